"""The command line and the records held against misuse: each item of the security review,
checked here (each failed before): opting out someone else, erasure that must reach the disk
and the audit trail, links out of the scanned folders, spreadsheet formulas and terminal
escapes from uploaders, report files, and a full disk mid-scan."""

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import Cli, _Raw

EILEEN = "Eileen Collins"


def test_a_stranger_enrolled_on_the_web_leads_to_review_never_removal(new_db, demo_folder, tmp_path):
    """Anyone may upload someone else's photos on /enroll: without a liveness check (or an operator's
    verification) the opt-out is unverified, and the person's photos go to a reviewer."""
    pytest.importorskip("fastapi", reason="the web app needs the [web] extra")
    from fastapi.testclient import TestClient

    from matcher.policy import load_policy
    from matcher.web import create_app

    db = new_db("consent")
    client = TestClient(create_app(str(db), load_policy(None)), base_url="https://testserver")
    client.get("/")
    token = client.cookies["cm_csrf"]
    page = client.post("/enroll", data={"csrf": token},
                       files=[("photos", ("her.jpg", demo_folder["reference"].read_bytes(), "image/jpeg"))])
    pending = page.text.split('name="pending" value="')[1].split('"')[0]
    assert client.post("/enroll/confirm", data={"csrf": token, "pending": pending}).status_code == 200
    cli = Cli(db)
    [person] = cli.json("people")
    assert person["verified_by"] is None
    cli("scan", "--quiet", demo_folder["media"])
    flagged = [e for e in cli.json("report") if e["matches"]]
    assert len(flagged) >= 4
    assert {(m["decision"], m["rule"]) for e in flagged for m in e["matches"]} == {("review", "unverified-opt-out")}
    assert "not verified" in flagged[0]["matches"][0]["reason"]


def test_an_operator_verifies_and_operator_enrollments_are_verified(cli, demo_folder):
    cli("enroll", EILEEN, demo_folder["reference"])
    assert cli.json("people")[0]["verified_by"] == "operator"
    assert cli("verify", EILEEN, "--method", "palm-reading", "--by", "x", ok=False).exit_code == 2
    done = cli.json("verify", EILEEN, "--method", "id-document", "--by", "front desk")
    assert done["changed"] and cli.json("people")[0]["verified_by"] == "id-document"
    [entry] = [e for e in cli.json("audit") if e["event"] == "verify" and e["new"] == "id-document"]
    assert json.loads(entry["detail"]) == {"method": "id-document", "by": "front desk"}
    assert entry["actor"].startswith("cli:")


def test_erasure_leaves_nothing_of_the_person_readable_in_the_audit_trail(private_db, demo_folder, tmp_path):
    """Notes, uploaders and paths about the person were kept word for word in the trail after an
    erasure. They are now encrypted with a key of the person's, which erasure destroys."""
    media = tmp_path / "media"
    shutil.copytree(demo_folder["media"], media)
    (tmp_path / "uploads.csv").write_text("path,uploader,context\nmedia/uploads/astronaut-press-photo.jpg,"
                                          "daily-news-desk,news\n")
    cli = Cli(private_db.target)
    cli("enroll", EILEEN, demo_folder["reference"])
    cli("scan", "--quiet", "--manifest", tmp_path / "uploads.csv", media)
    cli("consent", "grant", EILEEN, "--uploader", "her-sister-uploads")
    [item] = cli.json("review", "list")
    cli("review", "decide", item["id"], "--remove", "--reviewer", "rosa", "--note", "she is in hospital, bed 14")
    trail = {e["event"]: e for e in cli.json("audit")}
    assert trail["review"]["detail"] == "she is in hospital, bed 14"  # readable while she is enrolled
    personal = [b"she is in hospital, bed 14", b"her-sister-uploads", b"astronaut-press-photo.jpg"]
    cli("forget", EILEEN, "--yes")
    stored = private_db.stored_bytes()
    assert not any(secret in stored for secret in personal[:2])
    for entry in cli.json("audit"):
        if entry["event"] in ("review", "consent-grant", "decision") and entry["detail"]:
            assert entry["detail"] == "(erased with person:1)", entry
    assert cli.json("audit", "verify")["ok"]


def test_an_erasure_that_has_not_reached_the_file_says_so(private_db, demo_folder):
    """Before: with another connection reading, forget said "database compacted" while the name and
    embeddings stayed in the file. Now it waits, then fails saying what remains and what to do."""
    cli = Cli(private_db.target)
    cli("enroll", EILEEN, demo_folder["reference"])
    reader = _Raw(cli.db).conn
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM people").fetchone()  # a read transaction, held open
    result = cli("forget", EILEEN, "--yes", ok=False)
    assert result.exit_code == 1
    assert "erased from the records, but NOT yet from the disk" in result.output
    assert "consent-matcher compact" in result.output
    assert EILEEN.encode() in private_db.stored_bytes()  # true: it is still there
    reader.close()
    assert cli.json("compact")["compacted"]
    assert EILEEN.encode() not in private_db.stored_bytes()
    assert cli.json("people") == []


def test_links_out_of_the_scanned_folders_are_not_followed(private_db, demo_folder, tmp_path):
    """Before: a link to /etc/shadow had the file read and its SHA-256 stored."""
    cli = Cli(private_db.target)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "private.jpg"
    shutil.copy(demo_folder["portrait"], secret)
    media = tmp_path / "media"
    media.mkdir()
    (media / "link-out.jpg").symlink_to(secret)
    shutil.copy(demo_folder["hopper"], media / "hopper.jpg")
    (media / "link-in.jpg").symlink_to(media / "hopper.jpg")
    cli("enroll", EILEEN, demo_folder["reference"])
    summary = cli.json("scan", media)
    assert summary["error_files"] == [{"path": str(media / "link-out.jpg"), "error": (
        "a symbolic link to a file outside the scanned folders: not followed (scan --follow-links reads such files)")}]
    report = cli.report()
    assert report["link-out.jpg"]["sha256"] is None and report["link-in.jpg"]["status"] == "ok"
    import hashlib

    assert hashlib.sha256(secret.read_bytes()).hexdigest().encode() not in private_db.stored_bytes()
    os.utime(media / "link-out.jpg", follow_symlinks=False)
    followed = cli.json("scan", "--follow-links", media)
    assert followed["errors"] == 0 and cli.report()["link-out.jpg"]["decision"] == "remove"


def test_uploaders_cannot_plant_spreadsheet_formulas_or_terminal_escapes(cli, demo_folder, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(demo_folder["portrait"], media / "a.jpg")
    shutil.copy(demo_folder["mirrored"], media / "b.jpg")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"path": "media/a.jpg", "uploader": '=cmd|"/c calc"!A0',
                                    "context": ["news", "\x1b]0;pwned\x07"]}) + "\n"
                        + json.dumps({"path": "media/b.jpg", "uploader": "+SUM(1,1)\x1b[2J\x1b]0;pwned\x07"}) + "\n")
    cli("enroll", EILEEN, demo_folder["reference"])
    cli("consent", "grant", EILEEN, "--uploader", "@nobody")
    cli("scan", "--quiet", "--manifest", manifest, media)
    csv_text = cli("report", "--format", "csv").stdout
    import csv
    import io

    cells = [cell for row in csv.reader(io.StringIO(csv_text)) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert "'=cmd|\"/c calc\"!A0" in cells
    text = cli("report").stdout + cli("review", "list").stdout
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07" in text  # shown escaped


def test_report_files_are_private_to_their_owner(cli, demo_folder, tmp_path):
    cli("enroll", EILEEN, demo_folder["reference"])
    cli("scan", "--quiet", demo_folder["media"])
    for fmt in ("json", "csv", "html", "text"):
        out = tmp_path / f"report.{fmt}"
        out.write_text("old")
        os.chmod(out, 0o644)
        cli("report", "--format", fmt, "-o", out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text() != "old"


FILES = 400
FULL_DISK = r"""
set -u
mount -t tmpfs -o size=8m tmpfs "$MNT" || exit 77
"$PY" -m matcher --db "$MNT/c.db" people >/dev/null
free=$(df --output=avail -B1 "$MNT" | tail -n 1)
head -c $((free - 100000)) /dev/zero > "$MNT/filler" 2>/dev/null
"$PY" -m matcher --db "$MNT/c.db" scan --workers 1 --quiet --json "$MEDIA" >"$OUT/first.json" 2>"$OUT/first.err"
echo $? >"$OUT/first.rc"
rm "$MNT/filler"
"$PY" -m matcher --db "$MNT/c.db" scan --workers 1 --quiet --json "$MEDIA" >"$OUT/second.json" 2>"$OUT/second.err"
echo $? >"$OUT/second.rc"
"$PY" -m matcher --db "$MNT/c.db" report --json >"$OUT/report.json"
"""


@pytest.mark.sqlite_only("an SQLite file on a small filesystem")
def test_a_full_disk_mid_scan_stops_with_one_line_and_the_rerun_finishes(tmp_path):
    """Before: a Python traceback (sqlite3.OperationalError: database or disk is full). On an 8 MB
    filesystem filled but for 100 KB, and more files than that holds, even written in batches (mounted in a private namespace, as root or in a user namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare to mount a small filesystem")
    media = tmp_path / "media"
    media.mkdir()
    for index in range(FILES):
        noise = np.random.default_rng(index).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(noise).save(media / f"{index:02d}.jpg")
    mount_point, out = tmp_path / "small-disk", tmp_path / "out"
    mount_point.mkdir()
    out.mkdir()
    env = {**os.environ, "MNT": str(mount_point), "MEDIA": str(media), "OUT": str(out), "PY": sys.executable}
    namespace = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    result = subprocess.run([*namespace, "sh", "-c", FULL_DISK], env=env, capture_output=True, text=True, timeout=600)
    if result.returncode == 77 or (result.returncode and "unshare" in result.stderr):
        pytest.skip(f"cannot mount a small filesystem here: {result.stderr.strip()[:200]}")
    first_error = (out / "first.err").read_text()
    assert (out / "first.rc").read_text().strip() == "1", first_error
    [line] = [line for line in first_error.splitlines() if line.strip()]
    assert line.startswith("scan stopped, the database cannot be written (is the disk full?)")
    assert "run the same scan again to finish the rest" in line and "Traceback" not in first_error
    recorded = int(line.split(". ")[1].split()[0])
    assert 0 < recorded < FILES
    assert (out / "second.rc").read_text().strip() == "0", (out / "second.err").read_text()
    second = json.loads((out / "second.json").read_text())
    assert second["unchanged"] + second["scanned"] == FILES and second["unchanged"] >= recorded - 1
    report = json.loads((out / "report.json").read_text())
    assert len(report) == len({entry["path"] for entry in report}) == FILES
