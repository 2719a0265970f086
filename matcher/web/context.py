"""What the web app's routes share: its settings, the records, the templates, enrollments awaiting confirmation."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from matcher.clock import Clock
from matcher.faces.liveness import random_prompts
from matcher.media import DEFAULT_MAX_PIXELS, WorkLimits
from matcher.observe import SCAN_ENGINE, ScanOptions
from matcher.policy import Policy
from matcher.references import ReferencePhoto
from matcher.services import Session, open_session
from matcher.web.facework import FaceWork

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PENDING_ENROLLMENT_SECONDS = 15 * 60
# Wrong access codes or reviewer tokens from one client before it must wait.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class WebSettings:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    secure_cookies: bool = True
    # POST /api/check: worker processes for the face work (0: in the request's thread, one
    # at a time) and the work budget of one upload, in seconds.
    check_workers: int = 0
    check_seconds: float = 30.0
    device: str = "cpu"  # cuda: the face networks on a GPU (PyTorch)
    # The liveness check of self-enrollment: prompts drawn from these directions.
    liveness_directions: tuple[str, ...] = ("left", "right", "up", "down")
    liveness_prompts: int = 3


@dataclass
class Pending:
    """What waits for a person to confirm: their references, the prompts of their liveness video."""

    references: list[ReferencePhoto]
    prompts: list[str]
    attempts: int = 0  # liveness videos refused so far
    expires: float = 0.0


class PendingEnrollments:
    """Enrollments waiting (in memory only, at most 15 minutes) for the person to confirm.

    Each is taken once; a refused liveness video puts it back under a new token with
    new prompts (a failed try tells what was seen: the next must follow other prompts).
    """

    def __init__(self, clock: Clock, directions: tuple[str, ...], prompts: int):
        self.clock, self.directions, self.prompts = clock, directions, prompts
        self._waiting: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def add(self, references: list[ReferencePhoto], attempts: int = 0) -> tuple[str, Pending]:
        token = secrets.token_urlsafe(32)
        now = self.clock.monotonic()
        pending = Pending(references, random_prompts(self.prompts, self.directions), attempts,
                          now + PENDING_ENROLLMENT_SECONDS)
        with self._lock:
            for key in [k for k, waiting in self._waiting.items() if waiting.expires < now]:
                del self._waiting[key]
            self._waiting[token] = pending
        return token, pending

    def prompts_for(self, person_id: int, take: bool = False) -> list[str]:
        """The prompts a signed-in person is shown to verify their opt-out later (kept until used
        or 15 minutes old); ``take``: used now (the next try gets new ones)."""
        key = f"person:{person_id}"
        now = self.clock.monotonic()
        with self._lock:
            found = self._waiting.get(key)
            if found is None or found.expires < now:
                found = self._waiting[key] = Pending([], random_prompts(self.prompts, self.directions), 0,
                                                     now + PENDING_ENROLLMENT_SECONDS)
            if take:
                del self._waiting[key]
        return found.prompts

    def take(self, token: str) -> Pending | None:
        """What waits under ``token``, once: None when unknown, taken or expired."""
        with self._lock:
            found = self._waiting.pop(token, None)
        if found is None or found.expires < self.clock.monotonic():
            return None
        return found


class SignInFailures:
    """Wrong codes and tokens per client address, forgotten after a window: past the limit, that
    client must wait (codes are 100 random bits, so guessing is already hopeless; this keeps
    anyone from trying at the server's full speed)."""

    def __init__(self, clock: Clock, limit: int = SIGN_IN_FAILURES, window: float = SIGN_IN_WINDOW_SECONDS):
        self.clock, self.limit, self.window = clock, limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, client: str) -> float:
        """How long ``client`` must wait before trying again (0: it may try now)."""
        now = self.clock.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if t > now - self.window]
            self._failures[client] = recent
            return 0.0 if len(recent) < self.limit else recent[0] + self.window - now

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(self.clock.monotonic())


@dataclass
class WebContext:
    db_path: str
    policy: Policy
    settings: WebSettings
    clock: Clock
    pending: PendingEnrollments = field(init=False)
    face_work: FaceWork = field(init=False)
    sign_in_failures: SignInFailures = field(init=False)

    def __post_init__(self):
        self.pending = PendingEnrollments(self.clock, self.settings.liveness_directions, self.settings.liveness_prompts)
        self.sign_in_failures = SignInFailures(self.clock)
        options = ScanOptions(max_pixels=self.settings.max_pixels, engine=replace(SCAN_ENGINE, device=self.settings.device),
                              limits=WorkLimits(seconds=self.settings.check_seconds))
        self.face_work = FaceWork(self.settings.check_workers, options)


def context(request: Request) -> WebContext:
    return request.app.state.web


def session(ctx: WebContext = Depends(context)) -> Iterator[Session]:
    """The records for one request, decisions brought up to date, closed after it."""
    records = open_session(ctx.db_path, ctx.policy, clock=ctx.clock)
    try:
        yield records
    finally:
        records.close()
