"""Who may use the web app: people's access codes, reviewers' tokens, platforms' API keys, signed-in sessions.

Secrets are made here and shown once; only their SHA-256 hashes are stored.
They are random (100 bits and more), so a plain SHA-256 is enough to keep a
stolen database from giving them away; a slow password hash is for secrets
people choose. Every new or withdrawn secret is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from matcher.model import Credential, NewAuditEntry, Person, SignedIn
from matcher.services.errors import ActionError
from matcher.services.session import Session

# Access codes are read and typed by people: no I, L, O or U (Crockford's base32).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CREDENTIAL_KINDS = ("reviewer", "apikey")
# What an API key may see beyond decisions: "names" shows enrolled people's names
# (without it, the API answers opaque ids: a key holder cannot learn who opted out).
API_SCOPES = ("names",)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_access_code(session: Session, person: Person, actor: str) -> str:
    """A new private access code for the person (the old one stops working); shown once, kept as a hash."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(20))
    store = session.store
    with store.write():
        store.people.set_access_code_hash(person.id, secret_sha256(code))
        store.audit.append([NewAuditEntry(actor, "access-code", f"person:{person.id}")])
    return "-".join(code[i:i + 5] for i in range(0, 20, 5))


def person_by_access_code(session: Session, code: str) -> Person | None:
    """The person whose code this is, typed loosely (any case, spaces or dashes), or None."""
    normalised = "".join(ch for ch in code.upper() if ch.isalnum())
    return session.store.people.by_access_code_hash(secret_sha256(normalised)) if normalised else None


def add_credential(session: Session, kind: str, name: str, actor: str, scope: str | None = None) -> str:
    """A new token for reviewer or API client ``name`` (replacing theirs, ending their sessions); shown once."""
    _check_kind(kind)
    name = name.strip()
    if not name:
        raise ActionError("the name must not be empty")
    if scope is not None and (kind != "apikey" or scope not in API_SCOPES):
        raise ActionError(f"an API key's scope is one of: {', '.join(API_SCOPES)}")
    token = secrets.token_urlsafe(24)
    store = session.store
    with store.write():
        store.credentials.put(kind, name, secret_sha256(token), scope)
        store.audit.append([NewAuditEntry(actor, f"{kind}-add", f"{kind}:{name}", new=scope)])
    return token


def remove_credential(session: Session, kind: str, name: str, actor: str) -> None:
    """Withdraw ``name``'s token; their signed-in sessions end."""
    _check_kind(kind)
    store = session.store
    with store.write():
        if not store.credentials.remove(kind, name):
            raise ActionError(f"no {kind} named {name!r}")
        store.audit.append([NewAuditEntry(actor, f"{kind}-remove", f"{kind}:{name}")])


def credentials(session: Session, kind: str) -> list[Credential]:
    _check_kind(kind)
    return session.store.credentials.of_kind(kind)


def credential(session: Session, kind: str, token: str) -> Credential | None:
    """Who holds this token of ``kind`` (and its scope), or None."""
    return session.store.credentials.holder(kind, secret_sha256(token)) if token else None


def person_reference(session: Session, person_id: int) -> str:
    """An opaque, stable id for an enrolled person: what an API key without the ``names`` scope sees.

    Keyed by a secret of this database, so it cannot be turned back into the
    person, counted through, or matched with another deployment's ids.
    """
    key = session.store.secret("person_reference_key").encode()
    return "person-" + hmac.new(key, str(person_id).encode(), hashlib.sha256).hexdigest()[:20]


def _check_kind(kind: str) -> None:
    if kind not in CREDENTIAL_KINDS:
        raise ValueError(f"unknown credential kind {kind!r}")


# -- signed-in browser sessions --------------------------------------------------------------


def sign_in(session: Session, kind: str, subject: str, seconds: int) -> str:
    """A new session token for ``subject`` (a person's id or a reviewer's name), valid ``seconds``.

    Their earlier sessions end: one signed-in browser at a time, and a session
    someone else obtained before does not outlive the next sign-in.
    """
    token = secrets.token_urlsafe(32)
    expires = datetime.fromisoformat(session.clock.now()) + timedelta(seconds=seconds)
    store = session.store
    with store.write():
        store.credentials.end_sessions_of(kind, subject)
        store.credentials.start_session(secret_sha256(token), kind, subject, expires.isoformat(timespec="seconds"))
    return token


def signed_in(session: Session, token: str) -> SignedIn | None:
    """Who holds this session token, while it has not expired."""
    return session.store.credentials.session(secret_sha256(token)) if token else None


def sign_out(session: Session, token: str) -> None:
    session.store.credentials.end_session(secret_sha256(token))
