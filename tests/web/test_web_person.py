"""A person's pages through the HTTP interface on real faces: enroll, confirm, code, sign in,
pause and resume, grant and revoke, erase; and the CLI and the web app leave the same audit trail."""

import re

import pytest

pytest.importorskip("fastapi", reason="the web app needs the [web] extra")
from fastapi.testclient import TestClient  # noqa: E402

from helpers import Cli, client_for, csrf_token  # noqa: E402

EILEEN = "Eileen Collins"


def preview(client: TestClient, photo) -> str:
    """Upload a photo to /enroll; the pending token of the preview page."""
    page = client.post("/enroll", data={"csrf": csrf_token(client)},
                       files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))])
    assert page.status_code == 200, page.text
    assert "Is this your face?" in page.text and "already been discarded" in page.text
    return re.search(r'name="pending" value="([^"]+)"', page.text).group(1)


def confirm(client: TestClient, pending: str):
    return client.post("/enroll/confirm", data={"csrf": csrf_token(client), "pending": pending})


def enroll_on_the_web(client: TestClient, photo) -> str:
    """The access code shown once after confirming."""
    page = confirm(client, preview(client, photo))
    assert page.status_code == 200
    return re.search(r'id="access-code">([^<]+)<', page.text).group(1)


def test_enrollment_confirmation_code_and_nothing_of_the_photo_kept(private_db, demo_folder, tmp_path):
    db = private_db.target
    client = client_for(db)
    code = enroll_on_the_web(client, demo_folder["reference"])
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code)
    (person,) = Cli(db).json("people")
    assert person["name"].startswith("self-") and person["references"] == 1
    # Signed in by the confirmation; the code works on a new browser too, typed loosely.
    assert client.get("/me").status_code == 200
    other = client_for(db)
    signed_in = other.post("/access", data={"csrf": csrf_token(other), "code": code.lower().replace("-", " ")},
                           follow_redirects=False)
    assert signed_in.status_code == 303
    # Only hashes: neither the code nor any part of the photo is in the database files.
    stored = private_db.stored_bytes()
    assert code.encode() not in stored and code.replace("-", "").encode() not in stored
    photo = demo_folder["reference"].read_bytes()
    assert all(photo[start:start + 64] not in stored for start in range(0, len(photo) - 64, 997))


def test_a_pending_enrollment_cannot_be_forged_or_used_twice(new_db, demo_folder, tmp_path):
    db = new_db("consent")
    client = client_for(db)
    pending = preview(client, demo_folder["reference"])
    for forged in ("made-up-token", pending[:-2] + "xx", pending + "x"):
        response = confirm(client, forged)
        assert response.status_code == 410 and "start again" in response.text
    assert Cli(db).json("people") == []
    assert confirm(client, pending).status_code == 200
    again = confirm(client, pending)
    assert again.status_code == 410 and "expired" in again.text
    assert len(Cli(db).json("people")) == 1


def test_pause_resume_grant_and_revoke_from_the_web(new_db, demo_folder, tmp_path):
    db = new_db("consent")
    cli = Cli(db)
    client = client_for(db)
    enroll_on_the_web(client, demo_folder["reference"])
    cli("scan", "--quiet", "--manifest", demo_folder["manifest"], demo_folder["media"])
    assert cli.report()["astronaut-portrait.jpg"]["matches"][0]["rule"] == "unverified-opt-out"
    cli("verify", cli.json("people")[0]["name"], "--method", "id-document", "--by", "front desk")
    assert cli.report()["astronaut-portrait.jpg"]["decision"] == "remove"
    token = csrf_token(client)

    paused = client.post("/me/opt-out", data={"csrf": token, "state": "pause"}, follow_redirects=True)
    assert "Your opt-out is paused" in paused.text
    assert cli.report()["astronaut-portrait.jpg"]["matches"][0]["rule"] == "opted-in"
    resumed = client.post("/me/opt-out", data={"csrf": token, "state": "resume"}, follow_redirects=True)
    assert "Your opt-out is active" in resumed.text
    assert cli.report()["astronaut-portrait.jpg"]["decision"] == "remove"
    assert client.post("/me/opt-out", data={"csrf": token, "state": "delete-everything"}).status_code == 400

    granted = client.post("/me/consents", data={"csrf": token, "uploader": "user-481"}, follow_redirects=True)
    assert "Consent recorded" in granted.text
    assert cli.report()["astronaut-portrait.jpg"]["decision"] == "allow"  # posted by user-481
    consent_id = re.search(r'action="/me/consents/(\d+)/revoke"', granted.text).group(1)
    revoked = client.post(f"/me/consents/{consent_id}/revoke", data={"csrf": token}, follow_redirects=True)
    assert "Consent revoked" in revoked.text and "revoked" in revoked.text
    assert cli.report()["astronaut-portrait.jpg"]["decision"] == "remove"
    assert client.post(f"/me/consents/{consent_id}/revoke", data={"csrf": token}).status_code == 404


AUDITED = ("enroll", "verify", "access-code", "consent-grant", "consent-revoke", "opt-in", "opt-out", "review",
           "erasure")


def trail(db) -> list[tuple]:
    """The audited changes of state, without who made them (which differs by design: so does
    how an opt-out was verified, by an operator at the command line, by the person on the web)."""
    return [(e["event"], e["subject"], e["old"], None if e["event"] == "verify" else e["new"], e["rule"],
             None if e["event"] == "verify" else e["detail"])
            for e in Cli(db).json("audit") if e["event"] in AUDITED]


def test_the_web_app_writes_the_same_audit_entries_as_the_command_line(new_db, demo_folder, tmp_path):
    by_cli, by_web = new_db("cli"), new_db("web")
    cli = Cli(by_cli)
    cli("enroll", EILEEN, demo_folder["reference"])
    cli("access-code", EILEEN)
    cli("scan", "--quiet", "--manifest", demo_folder["manifest"], demo_folder["media"])
    cli("opt-in", EILEEN)
    cli("opt-out", EILEEN)
    cli("consent", "grant", EILEEN, "--uploader", "user-77")
    cli("consent", "revoke", "1")
    [item] = cli.json("review", "list")
    cli("review", "decide", item["id"], "--remove", "--reviewer", "dana", "--note", "not news")
    cli("forget", EILEEN, "--yes")

    web = Cli(by_web)
    client = client_for(by_web)
    enroll_on_the_web(client, demo_folder["reference"])
    web("verify", web.json("people")[0]["name"], "--method", "id-document", "--by", "front desk")
    web("scan", "--quiet", "--manifest", demo_folder["manifest"], demo_folder["media"])
    token = csrf_token(client)
    client.post("/me/opt-out", data={"csrf": token, "state": "pause"})
    client.post("/me/opt-out", data={"csrf": token, "state": "resume"})
    client.post("/me/consents", data={"csrf": token, "uploader": "user-77"})
    client.post("/me/consents/1/revoke", data={"csrf": token})
    reviewer = client_for(by_web)
    reviewer_token = web.json("reviewer", "add", "dana")["token"]
    reviewer.post("/review/sign-in", data={"csrf": csrf_token(reviewer), "token": reviewer_token})
    [item] = web.json("review", "list")
    reviewer.post(f"/review/{item['id']}", data={"csrf": csrf_token(reviewer), "verdict": "remove", "note": "not news",
                                                      "seen": item["version"]})
    client.post("/me/erase", data={"csrf": token, "confirm": "erase"})

    expected = trail(by_cli)
    assert [entry[0] for entry in expected] == ["enroll", "verify", "access-code", "opt-in", "opt-out",
                                                "consent-grant", "consent-revoke", "review", "erasure"]
    assert sorted(trail(by_web), key=repr) == sorted(expected, key=repr)  # (the web verifies after the code)
    actors = {e["event"]: e["actor"] for e in Cli(by_web).json("audit")}
    assert actors["enroll"] == actors["access-code"] == "web:self-service"
    assert actors["consent-grant"] == "web:person:1" and actors["review"] == "reviewer:dana"
