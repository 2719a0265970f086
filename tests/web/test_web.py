"""The web app through its HTTP interface: access control, CSRF, cookies, limits, errors and the API.

Access control runs on made-up embeddings (no face model needed); the API
is checked on real faces against the CLI's report, and fuzzed from its own
OpenAPI schema.
"""

import io
import json
import re

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs the [web] extra")
from fastapi.testclient import TestClient  # noqa: E402

from helpers import Cli, client_for, csrf_token, raw, running_server, stored_content, unit, write_video  # noqa: E402
from matcher.model import Reference  # noqa: E402
from matcher.policy import load_policy  # noqa: E402
from matcher.services import access, open_session  # noqa: E402
from matcher.web import WebSettings, create_app  # noqa: E402


def records(db):
    return open_session(db, load_policy(None))


def person_with_code(session, name: str, seed: int) -> tuple[int, str]:
    person, _ = session.store.people.add_references(name, "dlib_resnet_v1", [Reference(f"photo-{seed}", unit(seed))],
                                                    False, [])
    return person.id, access.new_access_code(session, person, "test")


def sign_in_with(client: TestClient, code: str):
    return client.post("/access", data={"csrf": csrf_token(client), "code": code}, follow_redirects=False)


@pytest.fixture
def two_people(new_db, tmp_path):
    db = new_db("consent")
    with records(db) as session:
        alice_id, alice_code = person_with_code(session, "alice", 1)
        bob_id, bob_code = person_with_code(session, "bob", 2)
        alice_consent = session.store.consents.add(alice_id, None, "friend-of-alice", None)
    return db, {"alice": (alice_id, alice_code, alice_consent), "bob": (bob_id, bob_code)}


# Every page and action of an enrolled person, with the form it needs.
PERSON_ROUTES = [
    ("GET", "/me", {}),
    ("GET", "/me/erase", {}),
    ("POST", "/me/consents", {"uploader": "mallory"}),
    ("POST", "/me/consents/{consent}/revoke", {}),
    ("POST", "/me/opt-out", {"state": "pause"}),
    ("POST", "/me/erase", {"confirm": "erase"}),
]
REVIEWER_ROUTES = [("GET", "/review", {}), ("POST", "/review/0123456789ab", {"verdict": "remove", "seen": "0" * 12})]


def test_every_page_refuses_a_missing_or_wrong_code(two_people):
    db, people = two_people
    alice_id, alice_code, alice_consent = people["alice"]
    bob_id, bob_code = people["bob"]
    client = client_for(db)
    csrf = csrf_token(client)

    def call(method, path, form):
        path = path.format(consent=alice_consent)
        return client.request(method, path, data={"csrf": csrf, **form} if method == "POST" else None,
                              follow_redirects=False)

    # No session at all, then a made-up session cookie.
    for cookie in (None, "made-up-session"):
        if cookie:
            client.cookies.set("cm_session", cookie, domain="testserver")
        for method, path, form in PERSON_ROUTES + REVIEWER_ROUTES:
            response = call(method, path, form)
            assert response.status_code == 401, (cookie, method, path, response.status_code)
            assert "friend-of-alice" not in response.text
    # Wrong codes are refused.
    for wrong in ("", "AAAAA-AAAAA-AAAAA-AAAAA", alice_code[:-1], alice_code + "X"):
        assert sign_in_with(client, wrong).status_code == 401
    # Bob, signed in, sees only his own record and cannot touch Alice's consent.
    assert sign_in_with(client, bob_code).status_code == 303
    page = client.get("/me")
    assert page.status_code == 200 and "friend-of-alice" not in page.text
    assert call("POST", "/me/consents/{consent}/revoke", {}).status_code == 404
    for method, path, form in REVIEWER_ROUTES:  # a person's session is no reviewer's
        assert call(method, path, form).status_code == 401
    with records(db) as session:
        (consent,) = session.store.consents.of_person(alice_id)
        assert consent.revoked_at is None
        assert session.store.people.by_name("alice").opted_out
    # Bob erases himself: Alice is untouched; his code and session stop working.
    assert call("POST", "/me/erase", {"confirm": "erase"}).status_code == 200
    with records(db) as session:
        assert session.store.people.by_name("bob") is None and session.store.people.by_name("alice") is not None
    assert client.get("/me", follow_redirects=False).status_code == 401
    assert sign_in_with(client, bob_code).status_code == 401


def test_reviewer_tokens_and_api_keys_are_checked(two_people):
    db, _ = two_people
    cli = Cli(db)
    token = cli.json("reviewer", "add", "dana")["token"]
    key = cli.json("apikey", "add", "platform")["token"]
    client = client_for(db)
    csrf = csrf_token(client)
    for wrong in ("", "nope", key):  # an API key is no reviewer token
        response = client.post("/review/sign-in", data={"csrf": csrf, "token": wrong}, follow_redirects=False)
        assert response.status_code == 401
    assert client.post("/review/sign-in", data={"csrf": csrf, "token": token},
                       follow_redirects=False).status_code == 303
    assert client.get("/review").status_code == 200
    for headers in ({}, {"X-API-Key": "nope"}, {"X-API-Key": token}):
        response = client.post("/api/check", headers=headers, files={"file": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
        assert response.status_code == 401 and "API key" in response.json()["detail"]
    # Removing a reviewer ends their session at once.
    cli("reviewer", "remove", "dana")
    assert client.get("/review", follow_redirects=False).status_code == 401
    assert token.encode() not in stored_content(db)  # only its hash is kept


def test_many_requests_at_once_on_a_real_server(two_people):
    """uvicorn runs each request in a worker thread: parallel reads and writes, no error, nothing lost."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    db, people = two_people
    with running_server(create_app(str(db), load_policy(None))) as base:
        with httpx.Client(base_url=base) as first:
            csrf = first.get("/").cookies["cm_csrf"]
            first.cookies.set("cm_csrf", csrf)  # Secure: the client keeps it for HTTPS only
            signed_in = first.post("/access", data={"csrf": csrf, "code": people["bob"][1]})
        cookies = {"cm_csrf": csrf, "cm_session": signed_in.cookies["cm_session"]}

        def request(number: int) -> int:
            with httpx.Client(base_url=base, cookies=cookies, timeout=120) as client:
                if number % 3:
                    return client.get("/me").status_code
                return client.post("/me/consents", data={"csrf": csrf, "uploader": f"friend-{number}"}).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(request, range(90)))
    assert statuses.count(200) == 60 and statuses.count(303) == 30, statuses
    with records(db) as session:
        assert len(session.store.consents.of_person(people["bob"][0])) == 30


def test_forms_need_the_csrf_token_and_cookies_are_locked_down(two_people):
    db, people = two_people
    client = client_for(db)
    home = client.get("/")
    cookie = home.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict"):
        assert flag.lower() in cookie.lower(), cookie
    assert home.headers["Content-Security-Policy"] == (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    assert home.headers["X-Content-Type-Options"] == "nosniff" and home.headers["Referrer-Policy"] == "no-referrer"
    assert home.headers["Cache-Control"] == "no-store"
    code = people["alice"][1]
    # A form posted from elsewhere carries no (or another) token: refused, nothing done.
    for token in (None, "forged"):
        data = {"code": code} if token is None else {"code": code, "csrf": token}
        response = client.post("/access", data=data, follow_redirects=False)
        assert response.status_code == 403 and "reload the page" in response.text
    signed_in = sign_in_with(client, code)
    assert signed_in.status_code == 303
    session_cookie = signed_in.headers["set-cookie"]
    assert session_cookie.startswith("cm_session=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age=1800"):
        assert flag.lower() in session_cookie.lower(), session_cookie
    assert client.post("/me/erase", data={"confirm": "erase", "csrf": "forged"}).status_code == 403
    with records(db) as session:
        assert session.store.people.by_name("alice") is not None


def test_errors_are_plain_pages_without_stack_traces(two_people):
    db, people = two_people
    client = client_for(db)
    sign_in_with(client, people["alice"][1])
    with raw(db) as conn:  # a real fault inside: a damaged table
        conn.execute("ALTER TABLE consents RENAME COLUMN uploader TO secret_internals")
    response = client.get("/me")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    for leak in ("Traceback", "TypeError", "secret_internals", "store", ".py"):
        assert leak not in response.text
    assert client.get("/no/such/page").status_code == 404
    response = client.post("/me/consents", data={"csrf": client.cookies["cm_csrf"], "until": "31/01/2027"})
    assert response.status_code == 400 and "not a date" in response.text


def test_upload_limits_and_type_sniffing(new_db, tmp_path):
    db = new_db("consent")
    key = Cli(db).json("apikey", "add", "platform")["token"]
    client = client_for(db, max_upload_bytes=200_000, max_pixels=1_000_000)
    headers = {"X-API-Key": key}
    response = client.post("/api/check", headers=headers, files={"file": ("big.jpg", b"\xff\xd8\xff" + bytes(300_000))})
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    # The same body streamed without a declared length (chunked): counted as it arrives, refused.
    body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n\r\n" + bytes(300_000)

    def chunks():
        for start in range(0, len(body), 16_384):
            yield body[start:start + 16_384]

    response = client.post("/api/check", headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
                           content=chunks())
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    # A text file named .jpg: refused from its bytes, whatever its name and declared type.
    response = client.post("/api/check", headers=headers, files={"file": ("photo.jpg", b"hello " * 50, "image/jpeg")})
    assert response.status_code == 415 and "photo.jpg" in response.json()["detail"]
    response = client.post("/api/check", headers=headers, files={"file": ("empty.jpg", b"", "image/jpeg")})
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    # Over the pixel limit: refused before decoding, with the reason.
    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (2000, 1000)).save(png, "PNG")
    response = client.post("/api/check", headers=headers, files={"file": ("wide.png", png.getvalue(), "image/png")})
    assert response.status_code == 422 and "over the limit of 1,000,000" in response.json()["detail"]
    # The enrollment form applies the same limits, as a page.
    csrf = csrf_token(client)
    page = client.post("/enroll", data={"csrf": csrf}, files=[("photos", ("me.jpg", b"not a photo", "image/jpeg"))])
    assert page.status_code == 400 and "me.jpg: not an image" in page.text and "Nothing was stored" in page.text
    page = client.post("/enroll", data={"csrf": csrf}, files=[("photos", ("me.png", png.getvalue(), "image/png"))])
    assert page.status_code == 400 and "over the limit of 1,000,000" in page.text


def test_api_check_records_and_answers_like_the_report(new_db, demo_folder, tmp_path):
    """A real photo through the API: the same decision JSON as `report`, recorded, on real faces.

    A key sees people as opaque, stable ids; only a key given the `names` scope sees names.
    """
    db = new_db("consent")
    cli = Cli(db)
    cli("enroll", "eileen", demo_folder["reference"])
    key = cli.json("apikey", "add", "platform")["token"]
    named_key = cli.json("apikey", "add", "trusted", "--scope", "names")["token"]
    client = client_for(db)
    data = demo_folder["pair"].read_bytes()
    response = client.post("/api/check", headers={"X-API-Key": key},
                           files={"file": ("pair.jpg", data, "image/jpeg")},
                           data={"media_id": "post-1", "uploader": "user-481", "context": "holiday, beach"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["decision"] == "remove" and answer["path"] == "api/platform/post-1"
    [opaque] = [m["person"] for m in answer["matches"]]
    assert re.fullmatch(r"person-[0-9a-f]{20}", opaque) and "eileen" not in response.text
    assert len(answer["faces"]) == 2 and answer["context"] == ["beach", "holiday"]
    (recorded,) = [e for e in cli.json("report") if e["path"] == "api/platform/post-1"]
    assert json.loads(json.dumps(answer).replace(opaque, "eileen")) == recorded
    # The same person, the same id, in every answer; a key with the names scope sees the name.
    again = client.post("/api/check", headers={"X-API-Key": key}, files={"file": ("p.jpg", data, "image/jpeg")},
                        data={"media_id": "post-2"}).json()
    assert [m["person"] for m in again["matches"]] == [opaque]
    named = client.post("/api/check", headers={"X-API-Key": named_key}, files={"file": ("p.jpg", data, "image/jpeg")},
                        data={"media_id": "post-1", "uploader": "user-481", "context": "holiday, beach"}).json()
    assert [m["person"] for m in named["matches"]] == ["eileen"]
    cli("apikey", "remove", "trusted")
    # A consent for that uploader changes the recorded decision, like any scanned file.
    cli("consent", "grant", "eileen", "--uploader", "user-481")
    assert cli.report()["post-1"]["decision"] == "allow"
    # A broken photo: the reason, and nothing recorded.
    response = client.post("/api/check", headers={"X-API-Key": key},
                           files={"file": ("cut.jpg", demo_folder["broken"].read_bytes(), "image/jpeg")})
    assert response.status_code == 422 and re.search(r"cut\.jpg: .*truncated", response.json()["detail"])
    assert len(cli.json("report")) == 3  # post-1, post-2 and trusted's post-1


def test_consent_for_one_uploaded_item(new_db, demo_folder, tmp_path):
    """A person enrolled by an operator gets a code, uploads one photo they consent to: only that one is allowed."""
    db = new_db("consent")
    cli = Cli(db)
    cli("enroll", "eileen", demo_folder["reference"])
    cli("scan", "--quiet", demo_folder["media"])
    code = cli.json("access-code", "eileen")["access_code"]
    client = client_for(db)
    assert sign_in_with(client, code).status_code == 303
    copy = demo_folder["mirrored"].read_bytes()
    response = client.post("/me/consents", data={"csrf": client.cookies["cm_csrf"]},
                           files={"media": ("mine.jpg", copy, "image/jpeg")})
    assert response.status_code == 200 and "one media item" in response.text
    report = cli.report()
    assert report["astronaut-mirrored.jpg"]["decision"] == "allow"
    assert report["astronaut-portrait.jpg"]["decision"] == "remove"
    # A new code replaces the old one.
    cli("access-code", "eileen")
    assert sign_in_with(client_for(db), code).status_code == 401


def test_api_check_on_a_video(new_db, demo_folder, tmp_path):
    """A video upload: one match per person, with the times they are seen."""
    from PIL import Image

    db = new_db("consent")
    cli = Cli(db)
    cli("enroll", "eileen", demo_folder["reference"])
    key = cli.json("apikey", "add", "platform")["token"]
    still = np.asarray(Image.open(demo_folder["hopper"]).convert("RGB").resize((320, 376)))
    face = np.asarray(Image.open(demo_folder["portrait"]).convert("RGB").resize((320, 376)))
    video = tmp_path / "clip.mp4"
    write_video(video, "mp4v", [still] * 10 + [face] * 20, fps=10)  # eileen from 1 s to 3 s
    response = client_for(db).post("/api/check", headers={"X-API-Key": key},
                                   files={"file": ("clip.mp4", video.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["kind"] == "video" and answer["decision"] == "remove"
    (match,) = answer["matches"]
    assert match["person"].startswith("person-") and match["frame_times"] == [1.0, 2.0]


def test_enrollment_page_names_each_unusable_photo(new_db, demo_folder, tmp_path):
    """Real faces: two different people, a group photo, too many photos: refused with reasons, nothing stored."""
    db = new_db("consent")
    client = client_for(db)
    csrf = csrf_token(client)

    def enroll(*keys):
        files = [("photos", (demo_folder[key].name, demo_folder[key].read_bytes(), "image/jpeg")) for key in keys]
        return client.post("/enroll", data={"csrf": csrf}, files=files)

    page = enroll("reference", "hopper")
    assert page.status_code == 400 and "does not look like the same person" in page.text
    page = enroll("pair")
    assert page.status_code == 400 and "astronaut-and-hopper.jpg: 2 faces found" in page.text
    page = enroll("reference", "portrait", "mirrored", "news")
    assert page.status_code == 400 and "one to 3 photos" in page.text
    assert Cli(db).json("people") == []
    from PIL import Image, ImageOps

    flipped = io.BytesIO()
    ImageOps.mirror(Image.open(demo_folder["reference"])).save(flipped, "JPEG")
    page = client.post("/enroll", data={"csrf": csrf}, files=[
        ("photos", ("me.jpg", demo_folder["reference"].read_bytes(), "image/jpeg")),
        ("photos", ("me-too.jpg", flipped.getvalue(), "image/jpeg"))])
    assert page.status_code == 200 and page.text.count('class="photo"') == 2
    assert Cli(db).json("people") == []  # nothing is stored before the person confirms


def test_api_fuzzed_from_its_openapi_schema(new_db, demo_folder, tmp_path):
    """Schemathesis generates requests from /openapi.json, valid and invalid: no 500, answers as documented.

    A third of the generated uploads carry real media (faces of an enrolled person, of
    someone else, a broken photo), so successful answers are checked against the schema too.
    """
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings, strategies as st
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    db = new_db("consent")
    cli = Cli(db)
    cli("enroll", "eileen", demo_folder["reference"])
    key = cli.json("apikey", "add", "fuzzer")["token"]
    real_media = [demo_folder[name].read_bytes() for name in ("pair", "hopper", "portrait", "broken")]
    app = create_app(str(db), load_policy(None), WebSettings(max_upload_bytes=1_000_000))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = list(schema.get_all_operations())
    assert [op.ok().label for op in operations] == ["POST /api/check"]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses = []
    for operation in operations:
        media = st.one_of(st.none(), st.none(), st.sampled_from(real_media))

        @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(case=operation.ok().as_strategy(), photo=media)
        def fuzz(case, photo):
            if photo is not None and isinstance(case.body, dict):
                case.body["file"] = photo
            for headers in ({"X-API-Key": key}, {}):
                response = case.call_and_validate(headers=headers, checks=checks)
                statuses.append(response.status_code)

        fuzz()
    assert len(statuses) >= 120
    assert statuses.count(200) >= 5 and statuses.count(401) >= 60  # answers of both kinds were checked
    recorded = cli.json("report")
    assert any(entry["decision"] == "remove" for entry in recorded)  # a real face of the enrolled person went through
