"""Self-enrollment with a liveness video, through the web app, on a real video of a real person.

The Hamilton clip shows Lin-Manuel Miranda (reference: his photo) turning his head left and
right; segments of it are joined in the order the page prompts. (Up and down cannot be cut
from it, so this app prompts left and right only; the product prompts all four.)
"""

import re

import pytest

pytest.importorskip("fastapi", reason="the web app needs the [web] extra")

import liveness_videos as videos  # noqa: E402
from helpers import Cli, client_for, csrf_token  # noqa: E402

pytestmark = pytest.mark.skipif(not videos.CLIP.is_file(), reason=f"the shared faces are absent ({videos.CLIP})")

PHRASES = {"turn to your left": "left", "turn to your right": "right"}


def app_client(db):
    return client_for(db, liveness_directions=("left", "right"), liveness_prompts=2)


def prompts_of(page: str) -> list[str]:
    shown = re.search(r'id="prompts">([^<]+)<', page).group(1)
    return [PHRASES[phrase] for phrase in shown.split(", then ")]


def preview(client) -> tuple[str, list[str]]:
    page = client.post("/enroll", data={"csrf": csrf_token(client)},
                       files=[("photos", ("me.png", videos.MIRANDA.read_bytes(), "image/png"))])
    assert page.status_code == 200, page.text
    return re.search(r'name="pending" value="([^"]+)"', page.text).group(1), prompts_of(page.text)


def confirm(client, pending: str, video=None):
    files = [("video", ("selfie.mp4", video.read_bytes(), "video/mp4"))] if video else []
    return client.post("/enroll/confirm", data={"csrf": csrf_token(client), "pending": pending}, files=files)


def test_a_video_following_the_prompts_verifies_the_opt_out(db, tmp_path):
    client = app_client(db)
    pending, prompts = preview(client)
    assert sorted(prompts) == ["left", "right"]
    # First the segments in the wrong order: refused, saying what was seen, with new prompts.
    wrong = videos.segments_video(tmp_path / "wrong.mp4", list(reversed(prompts)))
    page = confirm(client, pending, wrong)
    assert page.status_code == 400 and "we asked you to" in page.text
    assert Cli(db).json("people") == []
    pending = re.search(r'name="pending" value="([^"]+)"', page.text).group(1)
    prompts = prompts_of(page.text)
    right = videos.segments_video(tmp_path / "right.mp4", list(prompts))
    page = confirm(client, pending, right)
    assert page.status_code == 200 and "your opt-out is verified" in page.text
    [person] = Cli(db).json("people")
    assert person["verified_by"] == "liveness"
    [entry] = [e for e in Cli(db).json("audit") if e["event"] == "verify"]
    assert entry["actor"] == "web:self-service" and entry["new"] == "liveness"


def test_a_still_photo_cannot_verify_and_no_video_leaves_it_unverified(db, tmp_path):
    client = app_client(db)
    pending, prompts = preview(client)
    page = confirm(client, pending, videos.still_video(tmp_path / "still.mp4"))
    assert page.status_code == 400 and "still picture" in page.text
    pending = re.search(r'name="pending" value="([^"]+)"', page.text).group(1)
    page = confirm(client, pending)  # opts out without a video
    assert page.status_code == 200 and "not verified yet" in page.text
    [person] = Cli(db).json("people")
    assert person["verified_by"] is None
    # Later, from their own page, with the prompts shown there.
    me = client.get("/me")
    prompts = prompts_of(me.text)
    video = videos.segments_video(tmp_path / "later.mp4", list(prompts))
    done = client.post("/me/verify", data={"csrf": csrf_token(client)},
                       files=[("video", ("selfie.mp4", video.read_bytes(), "video/mp4"))], follow_redirects=True)
    assert done.status_code == 200 and "Your opt-out is verified" in done.text
    assert Cli(db).json("people")[0]["verified_by"] == "liveness"
