"""Pages for people who opt out: enroll with photos, sign in with the access code, manage consents, erase.

The photos are discarded once embedded (the preview exists only in the page
sent back); the access code is shown once and kept as a hash.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse

from matcher.faces import ModelsMissing, process_engine
from matcher.faces.liveness import LivenessConfig, LivenessResult, check_liveness_upload, describe
from matcher.media import Frame
from matcher.model import Person
from matcher.references import EnrollError, check_same_person, reference_from_bytes
from matcher.report.html import draw_faces
from matcher.services import ActionError, Session, access, consents, enrollment, people
from matcher.web.context import WebContext, context, session
from matcher.web.facework import ServerBusy
from matcher.web.pages import read_upload, redirect, render, upload_name
from matcher.web.security import (
    SESSION_COOKIE,
    PageError,
    check_csrf,
    clear_session_cookie,
    current_person,
    sign_in,
    sign_in_allowed,
)

PERSON_SESSION_SECONDS = 30 * 60
MAX_LIVENESS_ATTEMPTS = 3
MAX_ENROLL_PHOTOS = 3
PREVIEW_WIDTH = 480
SELF_SERVICE = "web:self-service"

router = APIRouter(include_in_schema=False)
csrf_checked = [Depends(check_csrf)]


def actor_of(person: Person) -> str:
    return f"web:person:{person.id}"


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return render(request, "home.html")


@router.get("/enroll", response_class=HTMLResponse)
def enroll_form(request: Request):
    return render(request, "enroll.html", max_photos=MAX_ENROLL_PHOTOS)


@router.post("/enroll", response_class=HTMLResponse, dependencies=csrf_checked)
def enroll_preview(request: Request, photos: list[UploadFile] = File(...), ctx: WebContext = Depends(context)):
    photos = [photo for photo in photos if photo.filename or photo.size]
    if not 1 <= len(photos) <= MAX_ENROLL_PHOTOS:
        return render(request, "enroll.html", 400, max_photos=MAX_ENROLL_PHOTOS,
                      problems=[f"choose one to {MAX_ENROLL_PHOTOS} photos of yourself"])
    references, previews, problems = [], [], []
    for photo in photos:
        try:
            reference, rgb = ctx.face_work.in_process(reference_from_bytes, upload_name(photo), photo.file.read(),
                                                      process_engine(), ctx.settings.max_pixels)
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
            check_same_person(references, [], ctx.policy.review)
        except EnrollError as exc:
            problems += exc.problems
    if problems:
        return render(request, "enroll.html", 400, max_photos=MAX_ENROLL_PHOTOS, problems=problems)
    token, pending = ctx.pending.add(references)
    return render(request, "enroll_preview.html", previews=previews, pending=token, prompts=describe(pending.prompts))


@router.post("/enroll/confirm", response_class=HTMLResponse, dependencies=csrf_checked)
def enroll_confirm(request: Request, pending_token: str = Form(..., alias="pending"),
                   video: UploadFile | None = File(None), ctx: WebContext = Depends(context),
                   records: Session = Depends(session)):
    """Confirm an enrollment: with a liveness video (verified), or without one (unverified)."""
    pending = ctx.pending.take(pending_token)
    if pending is None:
        raise PageError(410, "This enrollment has expired (after 15 minutes) or was already confirmed: "
                             "start again from the enrollment page.")
    verified_by = None
    if video is not None and (video.filename or video.size):
        result = liveness_of(ctx, video, pending.prompts, [r.embedding for r in pending.references])
        if not result.passed:
            if pending.attempts + 1 >= MAX_LIVENESS_ATTEMPTS:
                raise PageError(403, "The video did not pass the check three times: start again from the "
                                     "enrollment page, or confirm without a video.")
            token, retry = ctx.pending.add(pending.references, pending.attempts + 1)
            return render(request, "enroll_preview.html", 400, previews=[], pending=token,
                          prompts=describe(retry.prompts), problems=result.problems)
        verified_by = "liveness"
    name = f"self-{secrets.token_hex(5)}"
    person = enrollment.enroll(records, name, pending.references, actor=SELF_SERVICE, verified_by=verified_by).person
    code = access.new_access_code(records, person, SELF_SERVICE)
    request.state.signed_in = "person"  # signed in below: the page shows it already
    response = render(request, "code.html", code=code, verified=verified_by is not None)
    return sign_in(response, ctx, records, "person", str(person.id), PERSON_SESSION_SECONDS)


@router.get("/access", response_class=HTMLResponse)
def access_form(request: Request):
    return render(request, "access.html")


@router.post("/access", dependencies=csrf_checked)
def access_code(request: Request, code: str = Form("", max_length=200), ctx: WebContext = Depends(context),
                client: str = Depends(sign_in_allowed), records: Session = Depends(session)):
    person = access.person_by_access_code(records, code)
    if person is None:
        ctx.sign_in_failures.failed(client)
        return render(request, "access.html", 401, problem="That access code is not valid.")
    return sign_in(redirect("/me"), ctx, records, "person", str(person.id), PERSON_SESSION_SECONDS)


@router.post("/sign-out", dependencies=csrf_checked)
def sign_out(request: Request, ctx: WebContext = Depends(context), records: Session = Depends(session)):
    access.sign_out(records, request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/")
    clear_session_cookie(response, ctx)
    return response


# -- an enrolled person's own record -----------------------------------------------------------


@router.get("/me", response_class=HTMLResponse)
def me(request: Request, person: Person = Depends(current_person), ctx: WebContext = Depends(context),
       records: Session = Depends(session)):
    prompts = None if person.verified else describe(ctx.pending.prompts_for(person.id))
    return render(request, "me.html", person=person, consents=consents.of_person(records, person.id),
                  prompts=prompts)


@router.post("/me/verify", response_class=HTMLResponse, dependencies=csrf_checked)
def verify(request: Request, video: UploadFile = File(...), person: Person = Depends(current_person),
           ctx: WebContext = Depends(context), records: Session = Depends(session)):
    """Verify one's opt-out afterwards with a liveness video, against the prompts shown on /me."""
    prompts = ctx.pending.prompts_for(person.id, take=True)
    result = liveness_of(ctx, video, prompts, records.store.people.reference_embeddings(person.id))
    if not result.passed:
        return render(request, "me.html", 400, person=person, consents=consents.of_person(records, person.id),
                      prompts=describe(ctx.pending.prompts_for(person.id)), problems=result.problems)
    people.verify(records, person, "liveness", "the person (liveness check)", actor_of(person))
    return redirect("/me?done=verified")


def liveness_of(ctx: WebContext, video: UploadFile, prompts: list[str], references) -> LivenessResult:
    """The liveness check of an uploaded selfie video, in the face-work pool within its budget."""
    data = read_upload(video, "record a short video of yourself following the prompts")
    config = LivenessConfig(match_threshold=ctx.policy.match, review_threshold=ctx.policy.review)
    try:
        return ctx.face_work.run(check_liveness_upload, data, prompts, np.stack(references), config,
                                 ctx.settings.max_pixels)
    except ServerBusy:
        raise PageError(503, "The server is busy: please send the video again in a minute.") from None


@router.post("/me/consents", dependencies=csrf_checked)
def grant(uploader: str = Form(""), until: str = Form(""), media: UploadFile | None = File(None),
          person: Person = Depends(current_person), records: Session = Depends(session)):
    sha256 = None
    if media is not None and (media.filename or media.size):
        sha256 = hashlib.sha256(read_upload(media, "choose the photo or video you consent to")).hexdigest()
    until = until.strip() or None
    if until is not None and not _is_date(until):
        raise PageError(400, f"the end date {until!r} is not a date (YYYY-MM-DD)")
    try:
        consents.grant(records, person, actor_of(person), sha256, uploader.strip() or None, until)
    except ActionError as exc:
        raise PageError(400, str(exc)) from None
    return redirect("/me?done=granted")


@router.post("/me/consents/{consent_id}/revoke", dependencies=csrf_checked)
def revoke(consent_id: int = Path(ge=1, le=2**63 - 1), person: Person = Depends(current_person),
           records: Session = Depends(session)):
    try:
        consents.revoke(records, consent_id, actor_of(person), person_id=person.id)
    except ActionError as exc:
        raise PageError(404, str(exc)) from None
    return redirect("/me?done=revoked")


@router.post("/me/opt-out", dependencies=csrf_checked)
def opt_out(state: str = Form(...), person: Person = Depends(current_person), records: Session = Depends(session)):
    if state not in ("pause", "resume"):
        raise PageError(400, "the opt-out can be paused or resumed")
    people.set_opted_out(records, person, state == "resume", actor_of(person))
    return redirect(f"/me?done={'resumed' if state == 'resume' else 'paused'}")


@router.get("/me/erase", response_class=HTMLResponse)
def erase_form(request: Request, person: Person = Depends(current_person)):
    return render(request, "erase.html", person=person)


@router.post("/me/erase", response_class=HTMLResponse, dependencies=csrf_checked)
def erase(request: Request, confirm: str = Form(""), person: Person = Depends(current_person),
          ctx: WebContext = Depends(context), records: Session = Depends(session)):
    if confirm != "erase":
        return render(request, "erase.html", 400, person=person,
                      problem="Tick the box to confirm that everything about you is to be erased.")
    counts = people.forget(records, person, actor_of(person))
    request.state.signed_in = None
    response = render(request, "erased.html", counts=counts)
    clear_session_cookie(response, ctx)
    return response


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
