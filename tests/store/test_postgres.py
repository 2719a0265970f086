"""The PostgreSQL store: many writers on one database, moving a file there, and URLs refused clearly."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import Cli, raw
from matcher.policy import load_policy
from matcher.services import open_session
from matcher.store import Store, StoreError

EILEEN = "Eileen Collins"
ON_POSTGRES = pytest.mark.postgresql_only("a PostgreSQL database")


def crops(count: int, offset: int, folder):
    """Distinct photos (different crops of the shipped astronaut and Grace Hopper photos)."""
    from matcher.demo import package_photos

    astronaut, hopper = package_photos()
    folder.mkdir()
    for i in range(offset, offset + count):
        source = astronaut if i % 2 else hopper
        source.crop((i, i, source.width - i, source.height - i)).save(folder / f"photo {i:02d}.jpg")
    return folder


def decisions_of(db) -> set[tuple]:
    with raw(db) as conn:
        return set(conn.execute("SELECT path, person_id, action, rule FROM decisions").fetchall())


@ON_POSTGRES
def test_two_scans_and_a_burst_of_web_actions_lose_and_duplicate_nothing(db, demo_folder, tmp_path):
    """Two scan processes over the same folders (in opposite orders) while the person pauses and resumes
    their opt-out, grants consents to the uploaders of the scanned files and revokes one, and a platform
    checks uploads through the API."""
    from fastapi.testclient import TestClient

    from matcher.web import create_app

    cli = Cli(db)
    cli("enroll", EILEEN, demo_folder["reference"])
    code = cli.json("access-code", EILEEN)["access_code"]
    key = cli.json("apikey", "add", "platform")["token"]
    first, second = crops(30, 0, tmp_path / "a"), crops(30, 30, tmp_path / "b")
    uploads = crops(6, 60, tmp_path / "uploads")
    manifest = tmp_path / "uploads.csv"  # the files of folder a were posted by six friends of hers
    manifest.write_text("path,uploader,context\n" + "".join(
        f"a/{photo.name},friend-{index % 6},\n" for index, photo in enumerate(sorted(first.iterdir()))))
    scans = [subprocess.Popen([sys.executable, "-m", "matcher", "--db", db, "scan", "--workers", "1", "--quiet",
                               "--json", "--manifest", str(manifest), *folders], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for folders in ((str(first), str(second)), (str(second), str(first)))]
    app = create_app(db, load_policy(None))
    failures, rounds_while_scanning = [], []

    def recorded() -> tuple[int, int]:
        """(scans recording, files recorded)."""
        with raw(db) as conn:
            return conn.execute("SELECT count(DISTINCT scanned_in), count(*) FROM files").fetchone()

    def scans_recording(since: int = 0) -> None:
        """Wait until both scans are recording files, and more than ``since`` are recorded (or the scans ended)."""
        deadline = time.monotonic() + 120
        while (time.monotonic() < deadline and any(process.poll() is None for process in scans)
               and not (recorded()[0] >= 2 and recorded()[1] > since)):
            time.sleep(0.05)

    def person_actions():
        scans_recording()
        client = TestClient(app, base_url="https://testserver")
        client.get("/")
        token = client.cookies["cm_csrf"]
        assert client.post("/access", data={"csrf": token, "code": code}, follow_redirects=False).status_code == 303
        for round_ in range(6):
            scans_recording(since=recorded()[1])  # each round while the scans record more files
            rounds_while_scanning.append(all(process.poll() is None for process in scans))
            for state in ("pause", "resume"):
                answer = client.post("/me/opt-out", data={"csrf": token, "state": state}, follow_redirects=False)
                failures.extend([answer.text] if answer.status_code != 303 else [])
            granted = client.post("/me/consents", data={"csrf": token, "uploader": f"friend-{round_}"},
                                  follow_redirects=True)
            failures.extend([granted.text] if granted.status_code != 200 else [])
        first_consent = re.findall(r'action="/me/consents/(\d+)/revoke"', granted.text)[0]
        revoked = client.post(f"/me/consents/{first_consent}/revoke", data={"csrf": token}, follow_redirects=False)
        failures.extend([revoked.text] if revoked.status_code != 303 else [])

    def api_checks():
        scans_recording()
        client = TestClient(app, base_url="https://testserver")
        for photo in sorted(uploads.iterdir()):
            answer = client.post("/api/check", headers={"X-API-Key": key}, data={"media_id": photo.stem},
                                 files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
            failures.extend([answer.text] if answer.status_code != 200 else [])

    threads = [threading.Thread(target=person_actions), threading.Thread(target=api_checks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    # How far the actions overlap the scans depends on the machine's load; the test means nothing
    # unless some of the fact changes landed between batches of both running scans.
    assert sum(rounds_while_scanning) >= 2, f"too few actions overlapped the scans: {rounds_while_scanning}"
    summaries = []
    for process in scans:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        summaries.append(json.loads(out))
    assert failures == []

    for summary in summaries:
        assert summary["files"] == 60 and summary["errors"] == 0
        assert summary["scanned"] + summary["copies"] + summary["unchanged"] == 60
    with raw(db) as conn:
        files = conn.execute("SELECT count(*), count(DISTINCT path) FROM files").fetchone()
        media = conn.execute("SELECT count(*) FROM media").fetchone()[0]
        duplicate_faces = conn.execute("SELECT count(*) FROM (SELECT sha256, seq FROM faces GROUP BY 1, 2 "
                                       "HAVING count(*) > 1) d").fetchone()[0]
        faceless = conn.execute("SELECT count(*) FROM media m WHERE NOT EXISTS "
                                "(SELECT 1 FROM faces f WHERE f.sha256 = m.sha256)").fetchone()[0]
        unmatched = conn.execute("SELECT count(*) FROM faces f WHERE NOT EXISTS "
                                 "(SELECT 1 FROM matches m WHERE m.face_id = f.id)").fetchone()[0]
        ids = [row[0] for row in conn.execute("SELECT id FROM audit ORDER BY id")]
        consents = conn.execute("SELECT count(*) FROM consents").fetchone()[0]
        opt_outs = conn.execute("SELECT count(*) FROM audit WHERE event IN ('opt-in', 'opt-out')").fetchone()[0]
    assert files == (66, 66) and media == 66  # 60 scanned twice at once, 6 uploads: each once
    assert duplicate_faces == 0 and faceless == 0 and unmatched == 0
    assert consents == 6 and opt_outs == 12  # every web action landed, each with its audit entry
    assert cli.json("consent", "list", EILEEN)[0]["revoked_at"] is not None
    verified = cli.json("audit", "verify")
    assert verified["ok"] and verified["entries"] == len(ids)

    # The decisions stored are those the final facts give: deciding everything again changes nothing.
    stored = decisions_of(db)
    with open_session(db, load_policy(None)) as session:
        session.decider().update()
    assert decisions_of(db) == stored
    assert len(stored) == 33  # Eileen is in every other photo
    allowed = {os.path.basename(path) for path, _, action, rule in stored if action == "allow"}
    posted_by_friends = {photo.name for index, photo in enumerate(sorted(first.iterdir())) if index % 6 and index % 2}
    assert allowed == posted_by_friends  # friend-0's consent was revoked; the other files: no consent


@ON_POSTGRES
def test_a_database_of_the_previous_release_moved_to_postgresql_reads_the_same(db, tmp_path):
    """`migrate` from the 0.1.0 file: the same report, people, consents, review queue, and the audit
    chain verifies to the same head; new records get new ids after the moved ones."""
    data = os.path.join(os.path.dirname(__file__), "data")
    source = tmp_path / "old.db"
    shutil.copy(os.path.join(data, "made-by-0.1.0-5591e76.sqlite"), source)
    from_sqlite = Cli(source)
    expected = {what: from_sqlite.json(*args) for what, args in (
        ("report", ["report"]), ("people", ["people"]), ("consents", ["consent", "list", "Ann"]),
        ("review", ["review", "list"]), ("audit", ["audit"]))}
    moved = Cli(tmp_path / "unused.db").json("migrate", "--from", f"sqlite:{source}", "--to", db)
    assert moved["audit"]["ok"] and moved["audit"]["entries"] == len(expected["audit"])
    assert moved["rows"]["audit"] == len(expected["audit"]) and moved["rows"]["people"] == 2
    on_postgres = Cli(db)
    for what, args in (("report", ["report"]), ("people", ["people"]), ("consents", ["consent", "list", "Ann"]),
                       ("review", ["review", "list"]), ("audit", ["audit"])):
        assert on_postgres.json(*args) == expected[what], what
    assert on_postgres.json("audit", "verify")["head"] == from_sqlite.json("audit", "verify")["head"]
    consent = on_postgres.json("consent", "grant", "Ann", "--uploader", "someone")
    assert consent["id"] > max(c["id"] for c in expected["consents"])
    assert on_postgres.json("audit", "verify")["ok"]
    again = Cli(tmp_path / "unused.db")("migrate", "--from", f"sqlite:{source}", "--to", db, ok=False)
    assert again.exit_code == 1 and "already holds records" in again.output


@pytest.mark.parametrize("url, problem", [
    ("postgresql://ann:hunter2@127.0.0.1:1/x", "Connection refused"),
    ("postgresql://ann:hunter2@127.0.0.1:notaport/x", 'invalid integer value "notaport"'),
    ("postgresql://ann:hunter2@127.0.0.1/", "names no database"),
    ("postgresql://ann@127.0.0.1/x?sslmode=sometimes&password=hunter2", 'invalid sslmode value: "sometimes"'),
    ("postgresql://ann:hunter2@[::1/x", "not a usable PostgreSQL URL"),
])
def test_a_bad_url_is_refused_naming_the_problem_and_never_the_password(url, problem):
    pytest.importorskip("psycopg", reason="the [postgres] extra")
    result = Cli(url)("people", ok=False)
    assert result.exit_code == 1 and problem in result.output and "Traceback" not in result.output
    assert "hunter2" not in result.output and "***" in result.output
    with pytest.raises(StoreError) as refused:
        Store(url)
    assert "hunter2" not in str(refused.value)


@ON_POSTGRES
def test_serve_with_several_worker_processes_shares_one_database(db, demo_folder, tmp_path):
    """`serve --workers 2`: two server processes, each with its own face model, record into one database."""
    import socket

    import httpx

    cli = Cli(db)
    cli("enroll", EILEEN, demo_folder["reference"])
    key = cli.json("apikey", "add", "platform")["token"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "w") as errors:  # its own process group: every process it starts is stopped with it
        server = subprocess.Popen([sys.executable, "-m", "matcher", "--db", db, "serve", "--workers", "2", "--port",
                                   str(port), "--check-workers", "1"], stdout=subprocess.DEVNULL, stderr=errors,
                                  start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        photos = [demo_folder["portrait"], demo_folder["mirrored"], demo_folder["hopper"], demo_folder["pair"]]

        def check(photo):
            return httpx.post(base + "/api/check", headers={"X-API-Key": key}, timeout=300,
                              files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}).json()

        answers = []
        threads = [threading.Thread(target=lambda p=p: answers.append(check(p))) for p in photos]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        workers = open(f"/proc/{server.pid}/task/{server.pid}/children").read().split()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    err = log.read_text()
    assert "2 processes" in err and db.split("@")[0] + "@" in err  # the URL is shown (here it has no password)
    assert sorted(answer["decision"] for answer in answers) == ["none", "remove", "remove", "remove"]
    assert len(cli.json("report")) == 4 and cli.json("audit", "verify")["ok"]
    assert len(workers) >= 2  # uvicorn's server processes (and its process-watching helper)


@ON_POSTGRES
def test_forget_refuses_to_say_done_where_the_server_recycles_its_log(pg_cluster, demo_folder):
    """With wal_recycle = on, old write-ahead log segments are renamed and reused, keeping the erased
    rows' bytes: forget records the erasure, then says the disk still holds them and what to set."""
    from pgcluster import Cluster

    with Cluster({"fsync": "off", "wal_recycle": "on"}) as cluster:
        cli = Cli(cluster.create_database("recycling"))
        cli("enroll", EILEEN, demo_folder["reference"])
        result = cli("forget", EILEEN, "--yes", ok=False)
        assert result.exit_code == 1 and "wal_recycle = off" in result.output
        assert "erased from the records, but NOT yet from the disk" in result.output
        assert cli.json("people") == []
