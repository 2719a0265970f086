"""Web access: reviewer tokens and API keys, and signed-in browser sessions.

Only SHA-256 hashes of secrets reach the store: the services make the secrets
and hash them, so a stolen database does not give them away.
"""

from __future__ import annotations

from matcher.model import Credential, SignedIn
from matcher.store.core import Database


class Credentials:
    def __init__(self, database: Database):
        self.db = database

    def put(self, kind: str, name: str, token_sha256: str, scope: str | None = None) -> None:
        """Give ``name`` (a reviewer or API client) a new token, replacing theirs; their sessions end."""
        with self.db.write():
            self.db.execute(
                "INSERT INTO credentials (kind, name, token_sha256, created_at, scope) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET token_sha256 = excluded.token_sha256, "
                "created_at = excluded.created_at, scope = excluded.scope",
                [kind, name, token_sha256, self.db.now(), scope])
            self.end_sessions_of(kind, name)

    def holder(self, kind: str, token_sha256: str) -> Credential | None:
        rows = list(self.db.query("SELECT name, created_at, scope FROM credentials WHERE kind = ? AND token_sha256 = ?",
                                  [kind, token_sha256]))
        return Credential(**rows[0]) if rows else None

    def of_kind(self, kind: str) -> list[Credential]:
        return [Credential(**row) for row in self.db.query(
            "SELECT name, created_at, scope FROM credentials WHERE kind = ? ORDER BY name", [kind])]

    def remove(self, kind: str, name: str) -> bool:
        with self.db.write():
            removed = self.db.execute("DELETE FROM credentials WHERE kind = ? AND name = ?", [kind, name]).rowcount
            self.end_sessions_of(kind, name)
        return removed > 0

    # -- sessions -------------------------------------------------------------------------------

    def start_session(self, token_sha256: str, kind: str, subject: str, expires_at: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [self.db.now()])
            self.db.execute("INSERT INTO sessions (token_sha256, kind, subject, expires_at) VALUES (?, ?, ?, ?)",
                            [token_sha256, kind, subject, expires_at])

    def session(self, token_sha256: str) -> SignedIn | None:
        """Who a session that has not expired is of, or None."""
        rows = list(self.db.query("SELECT kind, subject FROM sessions WHERE token_sha256 = ? AND expires_at >= ?",
                                  [token_sha256, self.db.now()]))
        return SignedIn(rows[0]["kind"], rows[0]["subject"]) if rows else None

    def end_session(self, token_sha256: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM sessions WHERE token_sha256 = ?", [token_sha256])

    def end_sessions_of(self, kind: str, subject: str) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM sessions WHERE kind = ? AND subject = ?", [kind, subject])
