"""What the web app's routes share: its settings, the records, the templates, enrollments awaiting confirmation."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from matcher.clock import Clock
from matcher.media import DEFAULT_MAX_PIXELS
from matcher.policy import Policy
from matcher.references import ReferencePhoto
from matcher.services import Session, open_session

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PENDING_ENROLLMENT_SECONDS = 15 * 60


@dataclass(frozen=True)
class WebSettings:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    secure_cookies: bool = True


class PendingEnrollments:
    """Reference embeddings waiting (in memory only, at most 15 minutes) for the person to confirm."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._waiting: dict[str, tuple[float, list[ReferencePhoto]]] = {}
        self._lock = threading.Lock()

    def add(self, references: list[ReferencePhoto]) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock.monotonic()
        with self._lock:
            for key in [k for k, (expires, _) in self._waiting.items() if expires < now]:
                del self._waiting[key]
            self._waiting[token] = (now + PENDING_ENROLLMENT_SECONDS, references)
        return token

    def take(self, token: str) -> list[ReferencePhoto] | None:
        """The references waiting under ``token``, once: None when unknown, taken or expired."""
        with self._lock:
            found = self._waiting.pop(token, None)
        if found is None or found[0] < self.clock.monotonic():
            return None
        return found[1]


@dataclass
class WebContext:
    db_path: str
    policy: Policy
    settings: WebSettings
    clock: Clock
    # One face model per process; dlib is not shared between threads.
    face_lock: threading.Lock = field(default_factory=threading.Lock)
    pending: PendingEnrollments = field(init=False)

    def __post_init__(self):
        self.pending = PendingEnrollments(self.clock)


def context(request: Request) -> WebContext:
    return request.app.state.web


def session(ctx: WebContext = Depends(context)) -> Iterator[Session]:
    """The records for one request, decisions brought up to date, closed after it."""
    records = open_session(ctx.db_path, ctx.policy, clock=ctx.clock)
    try:
        yield records
    finally:
        records.close()
