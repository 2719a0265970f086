"""Rendering pages: every page carries the CSRF token, the security headers, and a notice chosen by key."""

from __future__ import annotations

import os
import secrets

from fastapi import Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from matcher.media import sniff
from matcher.web.context import TEMPLATES, context
from matcher.web.security import CSRF_COOKIE, SECURITY_HEADERS, PageError, set_cookie

# Messages shown after a redirect, chosen by key so nothing from the URL is echoed.
NOTICES = {
    "granted": "Consent recorded.",
    "revoked": "Consent revoked.",
    "paused": "Your opt-out is paused: media showing you is allowed until you resume it.",
    "resumed": "Your opt-out is active again.",
    "decided": "Decision recorded.",
    "verified": "Your opt-out is verified: media showing you without consent is now removed without waiting "
                "for a reviewer.",
}


def render(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    notice = NOTICES.get(request.query_params.get("done", ""))
    signed_in = getattr(request.state, "signed_in", None)
    response = TEMPLATES.TemplateResponse(
        request, template, {"csrf": token, "notice": notice, "signed_in": signed_in, **values},
        status_code=status, headers=SECURITY_HEADERS)
    if request.cookies.get(CSRF_COOKIE) != token:
        set_cookie(response, context(request), CSRF_COOKIE, token, max_age=None)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def upload_name(upload: UploadFile) -> str:
    return os.path.basename(upload.filename or "") or "the upload"


def read_upload(upload: UploadFile, what: str) -> bytes:
    """The uploaded bytes, refused when empty or not media (sniffed from the bytes, whatever the name says)."""
    data = upload.file.read()
    if not data:
        raise PageError(400, f"{upload_name(upload)}: empty file (0 bytes)")
    if sniff(data[:64]) is None:
        raise PageError(415, f"{upload_name(upload)}: not an image or video (its first bytes match no supported "
                             f"format); {what}")
    return data
