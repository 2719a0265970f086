"""What keeps the web app safe: CSRF tokens, cookies, signed-in sessions, the body limit, headers, error pages.

Forms carry a CSRF token (double-submit: a cookie and a field that must be
equal); cookies are HttpOnly, SameSite=Strict and Secure; request bodies are
limited in size, declared or streamed; pages are never cached nor framed and
load nothing from elsewhere; errors are plain pages (JSON under /api/)
without stack traces.
"""

from __future__ import annotations

import hmac
import logging
from typing import Callable

import anyio

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.model import Credential, Person
from matcher.services import Session, access
from matcher.web.context import TEMPLATES, WebContext, context, session

log = logging.getLogger("consent-matcher.web")

SESSION_COOKIE = "cm_session"
CSRF_COOKIE = "cm_csrf"

SECURITY_HEADERS = {
    # Pages show personal data and faces: never cached, never framed, no outside resources.
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class PageError(Exception):
    """An error shown to the visitor as a plain page (or JSON under /api/)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class LimitBody:
    """ASGI middleware: refuse request bodies over ``limit`` bytes, declared or streamed, with 413.

    A streamed body (no Content-Length, or a false one) is counted as it
    arrives; past the limit the app is told the client left (so it stops
    reading), its own answer is dropped, and the 413 is sent instead.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = error_response(scope["path"], 413, too_large(self.limit))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await refusal(scope, receive, send)
        received, over = 0, False

        async def counting_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = True
                return {"type": "http.disconnect"}
            return message

        async def unless_over(message):
            if not over:
                await send(message)

        try:
            await self.app(scope, counting_receive, unless_over)
        except Exception:
            if not over:
                raise
        if over:
            await refusal(scope, receive, send)


class ApiKeyGate:
    """ASGI middleware: a call under /api/ without a valid key is refused (401) before its body is read.

    (FastAPI parses a form before any dependency runs: a wrong key would cost
    the whole upload, and be answered 400 for its body rather than 401.) The
    key's holder is handed to the route in ``request.state.api_client``.
    """

    def __init__(self, app, holder: Callable[[str], Credential | None]):
        self.app, self.holder = app, holder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            return await self.app(scope, receive, send)
        key = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
        holder = await anyio.to_thread.run_sync(self.holder, key) if key else None
        if holder is None:
            response = error_response(scope["path"], 401, "missing or unknown API key (header X-API-Key)")
            return await response(scope, receive, send)
        scope.setdefault("state", {})["api_client"] = holder
        await self.app(scope, receive, send)


def too_large(limit: int) -> str:
    return f"the upload is too large (the limit is {limit // (1024 * 1024)} MB)"


def error_response(path: str, status: int, message: str) -> Response:
    if path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    page = TEMPLATES.env.get_template("error.html").render(
        status=status, message=message, reviewer_page=path.startswith("/review"), csrf="", signed_in=None)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def install(app: FastAPI, limit: int, api_key_holder: Callable[[str], Credential | None]) -> None:
    """The API key gate, the body limit and the error pages, on ``app``."""

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError):
        return error_response(request.url.path, exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "There is no such page.", 405: "This page does not take that kind of request."}.get(
            exc.status_code, str(exc.detail))
        return error_response(request.url.path, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'][1:]) or 'request'}: {error['msg']}"
                             for error in exc.errors())
        return error_response(request.url.path, 422 if request.url.path.startswith("/api/") else 400,
                              f"the request is not valid: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request.url.path, 500, "Something went wrong on our side. Nothing was changed by "
                                                     "the request that failed; please try again later.")

    app.add_middleware(LimitBody, limit=limit)
    app.add_middleware(ApiKeyGate, holder=api_key_holder)  # added last: runs first


# -- forms and cookies ------------------------------------------------------------------------


def sign_in_allowed(request: Request, ctx: WebContext = Depends(context)) -> str:
    """A dependency: the client's address, refused (429) while it has tried too many wrong secrets."""
    client = request.client.host if request.client else "unknown"
    wait = ctx.sign_in_failures.wait_seconds(client)
    if wait > 0:
        raise PageError(429, f"Too many wrong codes from here: try again in {int(wait // 60) + 1} minute(s).")
    return client


def check_csrf(request: Request, csrf: str = Form("")) -> None:
    """A form must carry the token of this site's cookie: a form posted from elsewhere cannot."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise PageError(403, "This form has expired or did not come from this site: "
                             "go back, reload the page and send it again.")


def set_cookie(response: Response, ctx: WebContext, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=ctx.settings.secure_cookies, path="/")


def clear_session_cookie(response: Response, ctx: WebContext) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=ctx.settings.secure_cookies, httponly=True,
                           samesite="strict")


def sign_in(response: Response, ctx: WebContext, records: Session, kind: str, subject: str, seconds: int) -> Response:
    """Start a signed-in session for ``subject`` and give the browser its cookie."""
    set_cookie(response, ctx, SESSION_COOKIE, access.sign_in(records, kind, subject, seconds), max_age=seconds)
    return response


def signed_in_as(kind: str):
    """A dependency: the subject of this request's session of ``kind`` (a person's id, a reviewer's name), or 401."""

    def dependency(request: Request, records: Session = Depends(session)) -> str:
        found = access.signed_in(records, request.cookies.get(SESSION_COOKIE, ""))
        if found is None or found.kind != kind:
            raise PageError(401, "Please sign in first: this page is only for "
                                 + ("the person it is about." if kind == "person" else "reviewers."))
        request.state.signed_in = found.kind
        return found.subject

    return dependency


def current_person(records: Session = Depends(session), subject: str = Depends(signed_in_as("person"))) -> Person:
    person = records.store.people.by_id(int(subject))
    if person is None:
        raise PageError(401, "Please sign in first: this page is only for the person it is about.")
    return person

