"""consent-matcher: find enrolled people who opted out in scanned media and decide by shared policy rules.

Importing this package loads no model and changes no global state; the face
models are loaded lazily, once per process, by :mod:`matcher.engine`.
"""

__version__ = "0.1.0"
