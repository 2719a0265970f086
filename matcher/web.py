"""The web app: self-service opt-out, the review queue, and the upload check API.

A thin layer over :mod:`matcher.actions`, on the same database and policy
rules as the command line. Pages are server-rendered HTML forms that work
without JavaScript; ``POST /api/check`` is for platforms.

- People enroll with one to three photos, see the face found, confirm, and
  get a private access code (shown once, kept as a hash). The photos are
  discarded once their embeddings are made; the preview is sent to the
  browser only.
- Reviewers sign in with a token from ``consent-matcher reviewer add``.
- Platforms call the API with a key from ``consent-matcher apikey add``.

Forms carry a CSRF token (double-submit: a cookie and a field that must be
equal); cookies are HttpOnly, SameSite=Strict and Secure; uploads are limited
in size and pixels and sniffed from their bytes; errors are plain pages
without stack traces.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher import actions
from matcher.decide import refresh_stale_decisions
from matcher.enroll import EnrollError, Reference, check_same_person, reference_from_bytes
from matcher.engine import ModelsMissing, process_engine
from matcher.html_report import draw_faces, thumbnail
from matcher.media import DEFAULT_MAX_PIXELS, Frame, sniff
from matcher.policy import Policy
from matcher.report import media_reports
from matcher.scan import ScanOptions, check_upload
from matcher.store import Store

log = logging.getLogger("consent-matcher.web")

SESSION_COOKIE = "cm_session"
CSRF_COOKIE = "cm_csrf"
PERSON_SESSION_SECONDS = 30 * 60
REVIEWER_SESSION_SECONDS = 8 * 3600
PENDING_ENROLLMENT_SECONDS = 15 * 60
MAX_ENROLL_PHOTOS = 3
PREVIEW_WIDTH = 480

# Messages shown after a redirect, chosen by key so nothing from the URL is echoed.
NOTICES = {
    "granted": "Consent recorded.",
    "revoked": "Consent revoked.",
    "paused": "Your opt-out is paused: media showing you is allowed until you resume it.",
    "resumed": "Your opt-out is active again.",
    "decided": "Decision recorded.",
}


# -- the API's answer, for its OpenAPI schema ---------------------------------------

class ErrorBody(BaseModel):
    detail: str


class FaceResult(BaseModel):
    box: list[int]
    person: str | None
    distance: float | None
    decision: str
    rule: str | None
    reason: str | None
    frame_time: float | None = None


class MatchResult(BaseModel):
    person: str
    decision: str
    rule: str
    reason: str
    distance: float | None
    box: list[int] | None
    faces: int
    frame_time: float | None = None
    frame_times: list[float] | None = None


class CheckResult(BaseModel):
    path: str
    sha256: str | None
    kind: str | None
    format: str | None
    width: int | None
    height: int | None
    status: str
    error: str | None
    uploader: str | None
    context: list[str]
    decision: str
    matches: list[MatchResult]
    faces: list[FaceResult]


@dataclass(frozen=True)
class WebSettings:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    secure_cookies: bool = True


class PageError(Exception):
    """An error shown to the visitor as a plain page (or JSON under /api/)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class BodyTooLarge(Exception):
    pass


@dataclass
class PendingEnrollment:
    references: list[Reference]
    expires: float = field(default_factory=lambda: time.monotonic() + PENDING_ENROLLMENT_SECONDS)


class LimitBody:
    """ASGI middleware: refuse request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = _error_response(scope["path"], 413, _too_large(self.limit))
            return await response(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge()
            return message

        await self.app(scope, counting_receive, send)


def _too_large(limit: int) -> str:
    return f"the upload is too large (the limit is {limit // (1024 * 1024)} MB)"


TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _error_response(path: str, status: int, message: str) -> Response:
    if path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    page = TEMPLATES.env.get_template("error.html").render(
        status=status, message=message, reviewer_page=path.startswith("/review"), csrf="", signed_in=None)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    # Pages show personal data and faces: never cached, never framed, no outside resources.
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(db_path: str, policy: Policy, settings: WebSettings = WebSettings()) -> FastAPI:
    """The web app on the database at ``db_path`` under ``policy``."""
    app = FastAPI(
        title="consent-matcher",
        summary="Check uploads against people who opted out of having their photos shared.",
        docs_url=None, redoc_url=None,  # the schema stays at /openapi.json
    )
    face_lock = threading.Lock()  # one face model per process; dlib is not shared between threads
    pending: dict[str, PendingEnrollment] = {}
    pending_lock = threading.Lock()

    store = Store(db_path)
    try:
        refresh_stale_decisions(store, policy, actions.ENGINE)
    finally:
        store.close()

    # -- plumbing ---------------------------------------------------------------

    def open_store():
        store = Store(db_path)
        try:
            yield store
        finally:
            store.close()

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        notice = NOTICES.get(request.query_params.get("done", ""))
        response = TEMPLATES.TemplateResponse(
            request, template, {"csrf": token, "notice": notice, "signed_in": signed_in_kind(request), **context},
            status_code=status, headers=SECURITY_HEADERS)
        if request.cookies.get(CSRF_COOKIE) != token:
            set_cookie(response, CSRF_COOKIE, token, max_age=None)
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=settings.secure_cookies, path="/")

    def signed_in_kind(request: Request) -> str | None:
        return request.state.session[0] if getattr(request.state, "session", None) else None

    def check_csrf(request: Request, csrf: str = Form("")) -> None:
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
            raise PageError(403, "This form has expired or did not come from this site: "
                                 "go back, reload the page and send it again.")

    def session_of(kind: str):
        def dependency(request: Request, store: Store = Depends(open_store)) -> str:
            token = request.cookies.get(SESSION_COOKIE)
            found = store.session(token) if token else None
            if found is None or found[0] != kind:
                raise PageError(401, "Please sign in first: this page is only for "
                                     + ("the person it is about." if kind == "person" else "reviewers."))
            request.state.session = found
            return found[1]
        return dependency

    def current_person(request: Request, store: Store = Depends(open_store),
                       subject: str = Depends(session_of("person"))):
        person = store.person_by_id(int(subject))
        if person is None:
            raise PageError(401, "Please sign in first: this page is only for the person it is about.")
        return person

    def redirect(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    def sign_in(response: Response, store: Store, kind: str, subject: str, seconds: int) -> Response:
        set_cookie(response, SESSION_COOKIE, store.start_session(kind, subject, seconds), max_age=seconds)
        return response

    def sign_out_of(response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=settings.secure_cookies, httponly=True,
                               samesite="strict")

    def read_upload(upload: UploadFile, what: str) -> bytes:
        data = upload.file.read()
        if not data:
            raise PageError(400, f"{_name(upload)}: empty file (0 bytes)")
        if sniff(data[:64]) is None:
            raise PageError(415, f"{_name(upload)}: not an image or video (its first bytes match no supported "
                                 f"format); {what}")
        return data

    # -- errors -----------------------------------------------------------------

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError):
        return _error_response(request.url.path, exc.status, exc.message)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge):
        return _error_response(request.url.path, 413, _too_large(settings.max_upload_bytes))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "There is no such page.", 405: "This page does not take that kind of request."}.get(
            exc.status_code, str(exc.detail))
        return _error_response(request.url.path, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'][1:]) or 'request'}: {error['msg']}"
                             for error in exc.errors())
        return _error_response(request.url.path, 422 if request.url.path.startswith("/api/") else 400,
                               f"the request is not valid: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error_response(request.url.path, 500, "Something went wrong on our side. Nothing was changed by "
                                                      "the request that failed; please try again later.")

    app.add_middleware(LimitBody, limit=settings.max_upload_bytes)

    # -- pages for everyone -------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request):
        return render(request, "home.html")

    @app.get("/enroll", response_class=HTMLResponse, include_in_schema=False)
    def enroll_form(request: Request):
        return render(request, "enroll.html", max_photos=MAX_ENROLL_PHOTOS)

    @app.post("/enroll", response_class=HTMLResponse, include_in_schema=False,
              dependencies=[Depends(check_csrf)])
    def enroll_preview(request: Request, photos: list[UploadFile] = File(...)):
        photos = [photo for photo in photos if photo.filename or photo.size]
        if not 1 <= len(photos) <= MAX_ENROLL_PHOTOS:
            return render(request, "enroll.html", 400, max_photos=MAX_ENROLL_PHOTOS,
                          problems=[f"choose one to {MAX_ENROLL_PHOTOS} photos of yourself"])
        references, previews, problems = [], [], []
        for photo in photos:
            try:
                with face_lock:
                    reference, rgb = reference_from_bytes(_name(photo), photo.file.read(), process_engine(),
                                                          settings.max_pixels)
            except EnrollError as exc:
                problems += exc.problems
                continue
            except ModelsMissing as exc:
                raise PageError(503, str(exc)) from None
            references.append(reference)
            face = {"box": reference.box.as_list(), "person": "you", "decision": "allow"}
            previews.append(draw_faces(Frame(rgb), [face], width=PREVIEW_WIDTH))
        if not problems:
            try:
                check_same_person(references, [], policy.review)
            except EnrollError as exc:
                problems += exc.problems
        if problems:
            return render(request, "enroll.html", 400, max_photos=MAX_ENROLL_PHOTOS, problems=problems)
        token = secrets.token_urlsafe(32)
        with pending_lock:
            for key in [k for k, v in pending.items() if v.expires < time.monotonic()]:
                del pending[key]
            pending[token] = PendingEnrollment(references)
        return render(request, "enroll_preview.html", previews=previews, pending=token)

    @app.post("/enroll/confirm", response_class=HTMLResponse, include_in_schema=False,
              dependencies=[Depends(check_csrf)])
    def enroll_confirm(request: Request, pending_token: str = Form(..., alias="pending"),
                       store: Store = Depends(open_store)):
        with pending_lock:
            enrollment = pending.pop(pending_token, None)
        if enrollment is None or enrollment.expires < time.monotonic():
            raise PageError(410, "This enrollment has expired (after 15 minutes) or was already confirmed: "
                                 "start again from the enrollment page.")
        name = f"self-{secrets.token_hex(5)}"
        actions.enroll(store, policy, name, enrollment.references, actor="web:self-service")
        person = store.person(name)
        code = store.set_access_code(person.id)
        request.state.session = ("person", str(person.id))  # signed in below: the page shows it already
        response = render(request, "code.html", code=code)
        return sign_in(response, store, "person", str(person.id), PERSON_SESSION_SECONDS)

    @app.get("/access", response_class=HTMLResponse, include_in_schema=False)
    def access_form(request: Request):
        return render(request, "access.html")

    @app.post("/access", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def access(request: Request, code: str = Form(""), store: Store = Depends(open_store)):
        person = store.person_by_access_code(code) if code.strip() else None
        if person is None:
            return render(request, "access.html", 401, problem="That access code is not valid.")
        return sign_in(redirect("/me"), store, "person", str(person.id), PERSON_SESSION_SECONDS)

    @app.post("/sign-out", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def sign_out(request: Request, store: Store = Depends(open_store)):
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            store.end_session(token)
        response = redirect("/")
        sign_out_of(response)
        return response

    # -- an enrolled person's own record -------------------------------------------------

    @app.get("/me", response_class=HTMLResponse, include_in_schema=False)
    def me(request: Request, person=Depends(current_person), store: Store = Depends(open_store)):
        return render(request, "me.html", person=person, consents=actions.consents(store, person.id))

    @app.post("/me/consents", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def grant(request: Request, uploader: str = Form(""), until: str = Form(""),
              media: UploadFile | None = File(None), person=Depends(current_person),
              store: Store = Depends(open_store)):
        sha256 = None
        if media is not None and (media.filename or media.size):
            sha256 = hashlib.sha256(read_upload(media, "choose the photo or video you consent to")).hexdigest()
        until = until.strip() or None
        if until is not None and not _is_date(until):
            raise PageError(400, f"the end date {until!r} is not a date (YYYY-MM-DD)")
        try:
            actions.grant_consent(store, policy, person, f"web:person:{person.id}", sha256,
                                  uploader.strip() or None, until)
        except actions.ActionError as exc:
            raise PageError(400, str(exc)) from None
        return redirect("/me?done=granted")

    @app.post("/me/consents/{consent_id}/revoke", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def revoke(consent_id: int, person=Depends(current_person), store: Store = Depends(open_store)):
        try:
            actions.revoke_consent(store, policy, consent_id, f"web:person:{person.id}", person_id=person.id)
        except actions.ActionError as exc:
            raise PageError(404, str(exc)) from None
        return redirect("/me?done=revoked")

    @app.post("/me/opt-out", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def opt_out(state: str = Form(...), person=Depends(current_person), store: Store = Depends(open_store)):
        if state not in ("pause", "resume"):
            raise PageError(400, "the opt-out can be paused or resumed")
        actions.set_opted_out(store, policy, person, state == "resume", f"web:person:{person.id}")
        return redirect(f"/me?done={'resumed' if state == 'resume' else 'paused'}")

    @app.get("/me/erase", response_class=HTMLResponse, include_in_schema=False)
    def erase_form(request: Request, person=Depends(current_person)):
        return render(request, "erase.html", person=person)

    @app.post("/me/erase", response_class=HTMLResponse, include_in_schema=False,
              dependencies=[Depends(check_csrf)])
    def erase(request: Request, confirm: str = Form(""), person=Depends(current_person),
              store: Store = Depends(open_store)):
        if confirm != "erase":
            return render(request, "erase.html", 400, person=person,
                          problem="Tick the box to confirm that everything about you is to be erased.")
        counts = actions.forget(store, policy, person, f"web:person:{person.id}")
        request.state.session = None
        response = render(request, "erased.html", counts=counts)
        sign_out_of(response)
        return response

    # -- reviewers ---------------------------------------------------------------------

    @app.get("/review/sign-in", response_class=HTMLResponse, include_in_schema=False)
    def reviewer_sign_in_form(request: Request):
        return render(request, "review_sign_in.html")

    @app.post("/review/sign-in", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def reviewer_sign_in(request: Request, token: str = Form(""), store: Store = Depends(open_store)):
        name = store.credential_name("reviewer", token.strip()) if token.strip() else None
        if name is None:
            return render(request, "review_sign_in.html", 401, problem="That reviewer token is not valid.")
        return sign_in(redirect("/review"), store, "reviewer", name, REVIEWER_SESSION_SECONDS)

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_queue(request: Request, reviewer: str = Depends(session_of("reviewer")),
                     store: Store = Depends(open_store)):
        items = actions.pending_reviews(store)
        reports = {entry["path"]: entry for entry in media_reports(store, paths=sorted({i["path"] for i in items}))}
        for item in items:
            entry = reports.get(item["path"])
            shown = item["frame_times"][0] if item["frame_times"] else None
            item["thumbnail"] = thumbnail(item["path"], entry["faces"], shown) if entry else None
        return render(request, "review.html", reviewer=reviewer, items=items)

    @app.post("/review/{item}", include_in_schema=False, dependencies=[Depends(check_csrf)])
    def review_decide(item: str, verdict: str = Form(...), note: str = Form(""),
                      reviewer: str = Depends(session_of("reviewer")), store: Store = Depends(open_store)):
        try:
            actions.decide_review(store, policy, item, verdict, reviewer, note.strip() or None)
        except actions.ActionError as exc:
            raise PageError(409, str(exc)) from None
        return redirect("/review?done=decided")

    # -- the platform API -----------------------------------------------------------------

    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                                  description="A key from `consent-matcher apikey add NAME`.")

    def api_client(key: str | None = Depends(api_key_header), store: Store = Depends(open_store)) -> str:
        name = store.credential_name("apikey", key) if key else None
        if name is None:
            raise PageError(401, "missing or unknown API key (header X-API-Key)")
        return name

    error_responses = {
        status: {"description": description, "model": ErrorBody}
        for status, description in (
            (400, "The upload is empty."),
            (401, "Missing or unknown API key."),
            (413, "The upload is over the size limit."),
            (415, "The upload is no image or video (its type is sniffed from its bytes)."),
            (422, "The request is malformed, or the media cannot be read (the reason is given)."),
        )
    }

    @app.post("/api/check", response_model=CheckResult, response_model_exclude_unset=True, responses=error_responses,
              tags=["platform"])
    def api_check(
        file: UploadFile = File(..., description="The uploaded image or video."),
        media_id: str = Form("", max_length=200, description="The platform's id for the upload "
                                                              "(default: its SHA-256); reported as its path."),
        uploader: str = Form("", max_length=200, description="Who posted it (consents may cover an uploader)."),
        context: str = Form("", max_length=500, description="Comma-separated context tags, e.g. news, crisis."),
        client: str = Depends(api_client),
        store: Store = Depends(open_store),
    ):
        """Check one upload against the people who opted out, record it, and return its decision.

        The answer has the shape of one entry of `consent-matcher report --format json`.
        """
        data = read_upload(file, "send an image or a video")
        label = f"api/{client}/{media_id.strip() or hashlib.sha256(data).hexdigest()}"
        metadata = {"uploader": uploader.strip() or None,
                    "context": [tag.strip() for tag in context.split(",") if tag.strip()]}
        try:
            with face_lock:
                error = check_upload(store, policy, data, label, metadata, ScanOptions(max_pixels=settings.max_pixels))
        except ModelsMissing as exc:
            raise PageError(503, str(exc)) from None
        if error:
            raise PageError(422, f"{_name(file)}: {error}")
        return next(media_reports(store, paths=[label]))

    return app


def _name(upload: UploadFile) -> str:
    return os.path.basename(upload.filename or "") or "the upload"


def _is_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
