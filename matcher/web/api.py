"""The platform API: ``POST /api/check`` records one upload and answers its decision, like one report entry."""

from __future__ import annotations

import hashlib

from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from matcher.faces import ModelsMissing
from matcher.model import Credential, Upload
from matcher.report import media_reports
from matcher.services import Session, access, open_session
from matcher.services.scanning import record_upload
from matcher.web.context import WebContext, context, session
from matcher.web.facework import ServerBusy
from matcher.web.pages import read_upload, upload_name
from matcher.web.security import PageError


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


ERROR_RESPONSES = {
    status: {"description": description, "model": ErrorBody}
    for status, description in (
        (400, "The upload is empty."),
        (401, "Missing or unknown API key."),
        (413, "The upload is over the size limit."),
        (415, "The upload is no image or video (its type is sniffed from its bytes)."),
        (422, "The request is malformed, or the media cannot be read or is over its work budget "
              "(the reason is given)."),
        (503, "The server is busy with other uploads, or its face models are missing."),
    )
}

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="A key from `consent-matcher apikey add NAME`.")
router = APIRouter(prefix="/api", tags=["platform"])


def key_holder(ctx: WebContext, key: str) -> Credential | None:
    """Who holds this API key (checked by the gate in :mod:`.security` before the body is read)."""
    with open_session(ctx.db_path, ctx.policy, clock=ctx.clock) as records:
        return access.credential(records, "apikey", key)


def api_client(request: Request, key: str | None = Depends(api_key_header)) -> Credential:
    # The gate has checked the key already; the header parameter documents it in the schema.
    return request.state.api_client


@router.post("/check", response_model=CheckResult, response_model_exclude_unset=True, responses=ERROR_RESPONSES)
def api_check(
    file: UploadFile = File(..., description="The uploaded image or video."),
    media_id: str = Form("", max_length=200, description="The platform's id for the upload "
                                                          "(default: its SHA-256); reported in its path."),
    uploader: str = Form("", max_length=200, description="Who posted it (consents may cover an uploader)."),
    context_tags: str = Form("", alias="context", max_length=500,
                             description="Comma-separated context tags, e.g. news, crisis."),
    client: Credential = Depends(api_client),
    ctx: WebContext = Depends(context),
    records: Session = Depends(session),
):
    """Check one upload against the people who opted out, record it, and return its decision.

    The answer has the shape of one entry of `consent-matcher report --format json`;
    people are opaque, stable ids unless the key was given the `names` scope.
    """
    data = read_upload(file, "send an image or a video")
    # An id is an id, never a path: anything but letters, digits and -._~ is %-escaped.
    label = f"api/{client.name}/{quote(media_id.strip(), safe='') or hashlib.sha256(data).hexdigest()}"
    upload = Upload.of(uploader.strip() or None, {tag.strip() for tag in context_tags.split(",") if tag.strip()})
    try:
        obs = ctx.face_work.observe(label, data)
    except ModelsMissing as exc:
        raise PageError(503, str(exc)) from None
    except ServerBusy:
        raise PageError(503, "the server is busy with other uploads: try again in a minute") from None
    error = record_upload(records, obs, upload)
    if error:
        raise PageError(422, f"{upload_name(file)}: {error}")
    named = client.scope == "names"
    return next(media_reports(records.store, paths=[label], person_label=None if named else (
        lambda person_id, name: access.person_reference(records, person_id))))
