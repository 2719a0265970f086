"""Pages for reviewers: sign in with a token, work the queue, keep or remove with a note."""

from __future__ import annotations

import os
from dataclasses import asdict

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse

from matcher.report import media_reports
from matcher.report.html import thumbnail
from matcher.services import ActionError, Session, access, reviews
from matcher.web.context import WebContext, context, session
from matcher.web.pages import redirect, render
from matcher.web.security import PageError, check_csrf, sign_in, sign_in_allowed, signed_in_as

REVIEWER_SESSION_SECONDS = 8 * 3600

router = APIRouter(include_in_schema=False)


@router.get("/review/sign-in", response_class=HTMLResponse)
def reviewer_sign_in_form(request: Request):
    return render(request, "review_sign_in.html")


@router.post("/review/sign-in", dependencies=[Depends(check_csrf)])
def reviewer_sign_in(request: Request, token: str = Form("", max_length=200), ctx: WebContext = Depends(context),
                     client: str = Depends(sign_in_allowed), records: Session = Depends(session)):
    holder = access.credential(records, "reviewer", token.strip())
    if holder is None:
        ctx.sign_in_failures.failed(client)
        return render(request, "review_sign_in.html", 401, problem="That reviewer token is not valid.")
    return sign_in(redirect("/review"), ctx, records, "reviewer", holder.name, REVIEWER_SESSION_SECONDS)


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, reviewer: str = Depends(signed_in_as("reviewer")),
                 records: Session = Depends(session)):
    items = [asdict(item) for item in reviews.pending(records)]
    entries = {entry["path"]: entry for entry in media_reports(records.store, paths=sorted({i["path"] for i in items}))}
    for item in items:
        entry = entries.get(item["path"])
        shown = item["frame_time"]  # in a video, the frame of the face the item was decided on
        # Only scanned files (absolute paths) are read for a picture: an API upload's
        # label is an id the platform chose, never a path to open on this server.
        readable = entry is not None and os.path.isabs(item["path"])
        item["thumbnail"] = thumbnail(item["path"], entry["faces"], shown) if readable else None
    return render(request, "review.html", reviewer=reviewer, items=items)


@router.post("/review/{item}", dependencies=[Depends(check_csrf)])
def review_decide(item: str = Path(pattern="^[0-9a-f]{12}$"), verdict: str = Form(...), note: str = Form("", max_length=2000),
                  seen: str = Form(..., pattern="^[0-9a-f]{12}$"),
                  reviewer: str = Depends(signed_in_as("reviewer")), records: Session = Depends(session)):
    try:
        reviews.decide(records, item, verdict, reviewer, note.strip() or None, seen)
    except ActionError as exc:
        raise PageError(409, str(exc)) from None
    return redirect("/review?done=decided")
