"""Consent lifecycle, re-deciding without rescanning, review queue, audit trail and erasure.

Real models on the package-shipped faces: Eileen Collins (enrolled) and
Grace Hopper. Re-decisions are made with the scanned media moved away, so
nothing could be decoded again.
"""

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from helpers import Cli, DayClock, headless_chromium, raw, shipped_rules_with, sideways_overflow

EILEEN = "Eileen Collins"


@pytest.fixture
def media(demo_folder, tmp_path):
    """Three distinct photos of Eileen from two uploaders, and one of Grace Hopper."""
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(demo_folder["portrait"], folder / "alice-1.jpg")
    shutil.copy(demo_folder["mirrored"], folder / "bob-1.jpg")
    Image.open(demo_folder["portrait"]).crop((40, 0, 512, 480)).save(folder / "bob-2.jpg")
    shutil.copy(demo_folder["hopper"], folder / "hopper.jpg")
    (tmp_path / "uploads.csv").write_text(
        "path,uploader,context\nmedia/alice-1.jpg,alice,\nmedia/bob-1.jpg,bob,\nmedia/bob-2.jpg,bob,\n"
        "media/hopper.jpg,carol,\n"
    )
    return folder


def scan(cli: Cli, media, *extra):
    return cli.json("scan", media, "--manifest", media.parent / "uploads.csv", *extra)


def decisions(cli: Cli) -> dict[str, tuple[str, str | None]]:
    out = {}
    for name, entry in cli.report().items():
        rules = [m["rule"] for m in entry["matches"]]
        out[name] = (entry["decision"], rules[0] if rules else None)
    return out


@pytest.fixture
def media_gone(media):
    """Move the scanned media away: a re-decision that needed to decode them again would fail.

    Returns where they went (a consent for one item reads that item to hash it).
    """

    def move() -> Path:
        gone = media.with_name("moved-away")
        media.rename(gone)
        return gone

    return move


def test_consent_scopes_expiry_and_revocation_redecide_without_decoding(cli, demo_folder, media, media_gone):
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    media = media_gone()
    removed = {"alice-1.jpg": ("remove", "no-consent"), "bob-1.jpg": ("remove", "no-consent"),
               "bob-2.jpg": ("remove", "no-consent"), "hopper.jpg": ("none", None)}
    assert decisions(cli) == removed

    # One media item, by content.
    one = cli.json("consent", "grant", EILEEN, "--media", media / "bob-2.jpg")["id"]
    assert decisions(cli) == {**removed, "bob-2.jpg": ("allow", "consent")}
    # One uploader.
    bob = cli.json("consent", "grant", EILEEN, "--uploader", "bob")["id"]
    assert decisions(cli) == {**removed, "bob-1.jpg": ("allow", "consent"), "bob-2.jpg": ("allow", "consent")}
    # A combination: alice's uploads, until tomorrow.
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    alice = cli.json("consent", "grant", EILEEN, "--uploader", "alice", "--until", tomorrow)["id"]
    assert decisions(cli)["alice-1.jpg"] == ("allow", "consent")
    # Already over: no effect.
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    old = cli.json("consent", "grant", EILEEN, "--until", yesterday)["id"]
    assert decisions(cli)["hopper.jpg"] == ("none", None)

    cli("consent", "revoke", bob)
    assert decisions(cli) == {**removed, "alice-1.jpg": ("allow", "consent"), "bob-2.jpg": ("allow", "consent")}
    statuses = {c["id"]: c["status"] for c in cli.json("consent", "list", EILEEN)}
    assert statuses == {one: "active", bob: "revoked", alice: "active", old: "expired"}
    assert cli("consent", "revoke", bob, ok=False).exit_code == 1  # no active consent with that id

    # Two days on, alice's consent has ended: the next command re-decides by itself.
    later = Cli(cli.db, clock=DayClock(date.today() + timedelta(days=2)))
    assert decisions(later)["alice-1.jpg"] == ("remove", "no-consent")
    assert {c["id"]: c["status"] for c in later.json("consent", "list", EILEEN)}[alice] == "expired"

    events = [e["event"] for e in cli.json("audit")]
    assert events.count("consent-grant") == 4 and events.count("consent-revoke") == 1


def test_opt_in_pauses_and_opt_out_resumes(cli, demo_folder, media, media_gone):
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    media_gone()
    cli("opt-in", EILEEN)
    assert {d for d in decisions(cli).values() if d[0] != "none"} == {("allow", "opted-in")}
    assert cli.json("people")[0]["opted_out"] is False
    assert cli.json("opt-in", EILEEN)["changed"] is False
    cli("opt-out", EILEEN)
    assert {d for d in decisions(cli).values() if d[0] != "none"} == {("remove", "no-consent")}
    assert [e["event"] for e in cli.json("audit") if e["event"].startswith("opt")] == ["opt-in", "opt-out"]


def test_a_rules_change_redecides_everything_without_decoding(cli, demo_folder, media, media_gone, tmp_path):
    from matcher.policy import default_policy_path

    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    media_gone()
    stricter = tmp_path / "stricter.toml"  # every confident match to review instead of removal
    shipped = default_policy_path().read_text()
    confident = 'when = { match = "confident", verified = true }\naction = "remove"'
    assert confident in shipped
    stricter.write_text(shipped.replace(confident, confident.replace('"remove"', '"review"')))
    edited = Cli(cli.db, stricter)
    result = edited("report", "--json")
    assert "decisions re-made from stored facts" in result.stderr
    assert {d for d in decisions(edited).values() if d[0] != "none"} == {("review", "no-consent")}
    rules_entries = [e for e in edited.json("audit") if e["event"] == "rules"]
    assert len(rules_entries) == 2 and rules_entries[-1]["detail"] == str(stricter)


def test_retroactive_matching_of_a_new_enrollment_decodes_nothing(cli, demo_folder, media, media_gone):
    scan(cli, media)  # nobody enrolled yet
    assert {d for d in decisions(cli).values()} == {("none", None)}
    media_gone()  # the enrollment decodes its reference photo, never the scanned media
    result = cli.json("enroll", EILEEN, demo_folder["reference"])
    assert result["media_rematched"] == 3 and result["stored_faces_matched"] == 3
    assert decisions(cli)["alice-1.jpg"] == ("remove", "no-consent")


def test_no_retention_keeps_no_unmatched_embedding_and_rescan_catches_up(new_db, demo_folder, media, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(shipped_rules_with("keep_unmatched_embeddings = true", "keep_unmatched_embeddings = false"))
    cli = Cli(new_db("c"), rules)
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    with raw(cli.db) as conn:
        kept = conn.execute("SELECT count(*), count(embedding) FROM faces").fetchone()
    # Eileen in 3 photos and Hopper: only Eileen's 3 keep their embedding.
    assert kept[1] == 3 and kept[0] > 3

    hopper_ref = tmp_path / "hopper-ref.jpg"
    Image.open(demo_folder["hopper"]).crop((50, 0, 462, 400)).save(hopper_ref)
    result = cli.json("enroll", "Grace Hopper", hopper_ref)
    assert result["stored_faces_matched"] == 0
    assert "hopper.jpg" in {p.rsplit("/", 1)[-1] for p in result["need_rescan"]}
    assert decisions(cli)["hopper.jpg"] == ("none", None)

    summary = scan(cli, media, "--rescan")
    assert summary["scanned"] == len(result["need_rescan"]) and summary["unchanged"] == 4 - summary["scanned"]
    assert decisions(cli)["hopper.jpg"] == ("remove", "no-consent")
    assert cli.json("enroll", "Grace Hopper", hopper_ref)["need_rescan"] == []  # nothing new enrolled
    with raw(cli.db) as conn:
        assert conn.execute("SELECT count(*) FROM faces GROUP BY sha256, seq HAVING count(*) > 1").fetchall() == []


def test_flood_guard_sends_a_burst_of_weaker_matches_to_review(new_db, demo_folder, tmp_path):
    """Past the limit, a person's matches of that scan go to review, except strong ones (distance up to
    0.45, which no stranger has come near): a much-photographed person's clear photos still go."""
    rules = tmp_path / "rules.toml"
    rules.write_text(shipped_rules_with("max_media_per_person_per_scan = 50", "max_media_per_person_per_scan = 3"))
    cli = Cli(new_db("c"), rules)
    cli("enroll", EILEEN, demo_folder["reference"])
    folder = tmp_path / "burst"
    folder.mkdir()
    portrait = Image.open(demo_folder["portrait"])
    for i in range(5):
        copy = portrait.crop((4 * i, 0, 512, 512 - 4 * i))
        if i >= 3:  # blurred: a weaker match (distance 0.475 measured), still a confident one
            copy = copy.filter(ImageFilter.GaussianBlur(3))
        copy.save(folder / f"copy-{i}.jpg")
    summary = cli.json("scan", folder)
    assert summary["flood_guard"] == [EILEEN]
    report = cli.report()
    decided = {name: (e["decision"], e["matches"][0]["rule"], e["matches"][0]["distance"]) for name, e in report.items()}
    assert {name: d[:2] for name, d in decided.items()} == {
        **{f"copy-{i}.jpg": ("remove", "no-consent") for i in range(3)},
        **{f"copy-{i}.jpg": ("review", "flood-guard") for i in (3, 4)}}, decided
    assert all(d[2] <= 0.45 for d in decided.values() if d[0] == "remove")
    assert "more than 3 media in one scan" in report["copy-3.jpg"]["matches"][0]["reason"]
    # A later scan with few new matches is not held back.
    portrait.crop((0, 30, 480, 512)).save(folder / "later.jpg")
    assert cli.json("scan", folder)["flood_guard"] == []
    assert cli.report()["later.jpg"]["decision"] == "remove"


def test_review_queue_verdict_stands_until_the_facts_change(cli, demo_folder, media, tmp_path, media_gone):
    (tmp_path / "uploads.csv").write_text("path,uploader,context\nmedia/alice-1.jpg,alice,news\n")
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    media_gone()
    [item] = cli.json("review", "list", "--person", EILEEN)
    assert item["path"].endswith("alice-1.jpg") and item["rule"] == "public-interest-context"
    assert len(item["box"]) == 4 and item["distance"] < 0.55
    assert cli("review", "decide", item["id"], "--keep", ok=False).exit_code == 2  # --reviewer is required
    stale = cli("review", "decide", item["id"], "--keep", "--reviewer", "Rosa", "--seen", "0" * 12, ok=False)
    assert stale.exit_code == 1 and "decided again since it was shown" in stale.output

    cli("review", "decide", item["id"], "--remove", "--reviewer", "Rosa", "--note", "not news: a private photo",
        "--seen", item["version"])
    entry = cli.report()["alice-1.jpg"]["matches"][0]
    assert (entry["decision"], entry["rule"]) == ("remove", "reviewer")
    assert "Rosa" in entry["reason"] and "not news" in entry["reason"]
    assert cli.json("review", "list") == []
    assert cli("review", "decide", item["id"], "--keep", "--reviewer", "Rosa", ok=False).exit_code == 1

    # New facts (a consent) end the verdict; when the consent goes, the item is queued again.
    consent = cli.json("consent", "grant", EILEEN, "--uploader", "alice")["id"]
    assert decisions(cli)["alice-1.jpg"] == ("allow", "consent")
    cli("consent", "revoke", consent)
    assert [i["id"] for i in cli.json("review", "list")] == [item["id"]]
    trail = cli.json("audit")
    assert any(e["event"] == "review" and e["actor"] == "reviewer:Rosa" and e["new"] == "remove" for e in trail)
    assert any(e["event"] == "review-expired" for e in trail)


def test_forget_leaves_no_byte_of_the_person_in_the_database_files(private_db, demo_folder, media, media_gone):
    """SQLite: the file and its write-ahead log. PostgreSQL: every file of the cluster's data directory
    (dead row versions, write-ahead log segments, planner statistics...)."""
    cli = Cli(private_db.target)
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    cli("consent", "grant", EILEEN, "--uploader", "bob")
    with raw(cli.db) as conn:
        secrets = [row[0] for row in conn.execute("SELECT embedding FROM reference_faces")]
        secrets += [row[0] for row in conn.execute(
            "SELECT f.embedding FROM faces f JOIN matches m ON m.face_id = f.id WHERE m.person_id IS NOT NULL")]
        unrelated = conn.execute("SELECT count(*) FROM faces f LEFT JOIN matches m ON m.face_id = f.id "
                                 "WHERE m.person_id IS NULL").fetchone()[0]
    assert len(secrets) == 4

    database_bytes = private_db.stored_bytes
    before = database_bytes()
    assert all(secret in before for secret in secrets) and EILEEN.encode() in before  # the search works
    media_gone()

    result = cli.json("forget", EILEEN, "--yes")
    assert (result["references"], result["matched_faces"], result["consents"]) == (1, 3, 1)
    after = database_bytes()
    import numpy as np

    packed = [np.frombuffer(s, "<f4").astype("<f2").tobytes() for s in secrets[1:]]  # retroactive-matching blocks
    assert all(p in before for p in packed)
    for secret in secrets + packed:
        assert secret not in after and secret[:32] not in after
    assert EILEEN.encode() not in after
    assert cli.json("people") == []
    assert {d for d in decisions(cli).values()} == {("none", None)}
    with raw(cli.db) as conn:  # faces of other people are kept
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == unrelated
    [erasure] = [e for e in cli.json("audit") if e["event"] == "erasure"]
    assert erasure["subject"] == result["erased"] == "person:1"
    assert cli("forget", EILEEN, "--yes", ok=False).exit_code == 1


def test_audit_chain_catches_edits_and_deletions(cli, demo_folder, media):
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    cli("consent", "grant", EILEEN, "--uploader", "bob")
    trail = cli.json("audit")
    assert [e["event"] for e in trail[:2]] == ["rules", "enroll"]
    assert sum(e["event"] == "decision" for e in trail) == 3 + 2  # three removals, then bob's two allowed
    assert all(e["actor"].startswith("cli:") or e["actor"] == "system" for e in trail)
    verified = cli.json("audit", "verify")
    assert verified["ok"] and verified["entries"] == len(trail)

    with raw(cli.db) as conn:
        conn.execute("UPDATE audit SET new = 'allow' WHERE id = 4")
    result = cli("audit", "verify", ok=False)
    assert result.exit_code == 1 and "BROKEN at entry 4" in result.output and "edited" in result.output
    with raw(cli.db) as conn:
        conn.execute("UPDATE audit SET new = ? WHERE id = 4", [trail[3]["new"]])
    assert cli.json("audit", "verify")["ok"]
    with raw(cli.db) as conn:
        conn.execute("DELETE FROM audit WHERE id = 3")
    assert cli.json("audit", "verify", ok=False)["broken_at"] == 4

    since = cli.json("audit", "--since", "2999-01-01")
    assert since == []
    assert json.loads(cli("audit", "--json").stdout)[0]["id"] == 1


def test_html_report_is_self_contained_and_renders_in_chromium(cli, demo_folder, media, tmp_path):
    import base64
    import io
    import re

    (media / "<b>odd & name.jpg").write_bytes((media / "alice-1.jpg").read_bytes()[:-1] + b"\xd9")
    (tmp_path / "uploads.csv").write_text("path,uploader,context\nmedia/bob-1.jpg,bob,news\n")
    cli("enroll", EILEEN, demo_folder["reference"])
    scan(cli, media)
    page = tmp_path / "report.html"
    cli("report", "--format", "html", "-o", page)
    text = page.read_text()
    assert text.count("<article>") == 4  # alice-1, bob-1 (review), bob-2, the odd name; not hopper
    assert "&lt;b&gt;odd &amp; name.jpg" in text and "<b>odd" not in text
    assert "src='http" not in text and "src=\"http" not in text  # nothing fetched from elsewhere
    thumbnails = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", text)
    assert len(thumbnails) == 4
    assert Image.open(io.BytesIO(base64.b64decode(thumbnails[0]))).size[0] == 360
    [pending] = cli.json("review", "list")
    assert f"item {pending['id']}" in text

    with headless_chromium() as browser:
        for width in (1280, 390):  # a desktop and a phone-width window
            browser.set_window_size(width, 1200)
            browser.get(page.as_uri())
            assert sideways_overflow(browser) <= 0, f"at {width} px the report scrolls sideways"
            assert browser.execute_script(  # every thumbnail decoded and drawn
                "return document.images.length === 4 && [...document.images].every(i => i.complete && i.naturalWidth === 360)")
            shot = tmp_path / f"report-{width}.png"
            browser.save_screenshot(str(shot))
            colours = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)}
            assert (0xC6, 0x28, 0x28) in colours  # the red "remove" badge was drawn
            assert len(colours) > 5000  # photos, not an empty page


def test_an_enrollment_during_a_scan_reaches_the_files_scanned_after_it(cli, demo_folder, tmp_path, monkeypatch):
    """The scan decides on a snapshot of the facts, taken anew as soon as they change."""
    from matcher.policy import load_policy
    from matcher.services import open_session, scanning
    from matcher.services.scanning import scan as run_scan

    monkeypatch.setattr(scanning, "BATCH_FILES", 1)  # each file recorded alone: the enrollment lands between two

    folder = tmp_path / "burst"
    folder.mkdir()
    portrait = Image.open(demo_folder["portrait"])
    for i in range(4):
        portrait.crop((4 * i, 0, 512, 512 - 4 * i)).save(folder / f"eileen-{i}.jpg")
    enrolled = []

    def enroll_after_the_first_file(summary, path, error):
        if summary.done == 1 and not enrolled:
            enrolled.append(cli.json("enroll", EILEEN, demo_folder["reference"]))

    with open_session(cli.db, load_policy()) as session:
        run_scan(session, [str(folder)], on_file=enroll_after_the_first_file)
    assert enrolled and enrolled[0]["media_rematched"] == 1  # only the first file was stored then
    assert {entry["decision"] for entry in cli.report().values()} == {"remove"}
