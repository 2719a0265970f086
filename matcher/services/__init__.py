"""The service layer: every change of state goes through here, each with its audit entry.

The command line and the web app are thin shells over these modules:
:mod:`~matcher.services.session` (open the records, decisions brought up to
date), :mod:`~matcher.services.enrollment`, :mod:`~matcher.services.people`
(opt-in/out, erasure), :mod:`~matcher.services.consents`,
:mod:`~matcher.services.reviews`, :mod:`~matcher.services.access` (access
codes, tokens, API keys, sessions), :mod:`~matcher.services.scanning`
(folders and single uploads), :mod:`~matcher.services.deciding` (match and
re-decide from stored facts) and :mod:`~matcher.services.calibration` (each
person's own thresholds against hubs).
"""

from matcher.services.errors import ActionError, MissingScope
from matcher.services.session import Session, open_session

__all__ = ["ActionError", "MissingScope", "Session", "open_session"]
