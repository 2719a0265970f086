"""A database file made by the previous release opens, reads and works the same with this one.

``data/made-by-0.1.0-5591e76.sqlite`` was written by consent-matcher 0.1.0 at
commit 5591e76 (made-up embeddings: two people, four scanned files, a consent
revoked and one expired, a reviewer's verdict, a reviewer token and an API
key); ``...expected.json`` holds what that version's own commands printed
for it (report, people, consent list, review list, audit verify).
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from helpers import Cli

DATA = Path(__file__).parent / "data"


@pytest.mark.sqlite_only("a file of the previous release (its move to PostgreSQL: test_postgres.py)")
def test_a_file_of_the_previous_release_reads_the_same_and_keeps_working(tmp_path):
    db = tmp_path / "consent.db"
    shutil.copy(DATA / "made-by-0.1.0-5591e76.sqlite", db)
    expected = json.loads((DATA / "made-by-0.1.0-5591e76.expected.json").read_text())
    # This release's rules, less the quality bands: the made-up faces are 10 px boxes, which the
    # bands rightly never trust without a person (tests/unit/test_policy.py covers the bands).
    rules = tmp_path / "policy.toml"
    shipped = (Path(__file__).parents[2] / "data" / "policy.toml").read_text()
    rules.write_text(re.sub(r"\[\[thresholds\.bands\]\][^\[]*", "", shipped))
    cli = Cli(db, policy=rules)
    assert cli.json("report") == expected["report"]
    assert [{k: v for k, v in p.items() if k not in ("verified_by", "own_thresholds")}  # new in this release
            for p in cli.json("people")] == expected["people"]
    assert cli.json("consent", "list", "Ann") == expected["consents"]
    assert [{k: v for k, v in item.items() if k not in ("frame_time", "version")}  # new in this release
            for item in cli.json("review", "list")] == expected["review"]
    # This release's rules differ (unverified opt-outs go to review), so the first command re-decided
    # under them: one more entry, linked to the old head; the old part of the chain is untouched.
    verified = cli.json("audit", "verify")
    assert verified["ok"] and verified["entries"] == expected["verify"]["entries"] + 1
    trail = cli.json("audit")
    assert trail[expected["verify"]["entries"] - 1]["hash"] == expected["verify"]["head"]
    assert trail[-1]["event"] == "rules" and trail[-1]["prev_hash"] == expected["verify"]["head"]
    # Ann was enrolled by an operator from the command line: still verified, so still removed.
    assert {p["name"]: p["verified_by"] for p in cli.json("people")} == {"Ann": "operator", "Ben": "operator"}

    # It goes on working: a change decides again from the stored faces, and extends the same chain.
    cli("consent", "grant", "Ann", "--uploader", "carl")
    assert cli.report()["ann-1.jpg"]["decision"] == "allow"
    assert cli.report()["ann-news.jpg"]["matches"][0]["rule"] == "reviewer"  # the verdict's facts still hold
    after = cli.json("audit", "verify")
    assert after["ok"] and after["entries"] > verified["entries"]
    assert cli("reviewer", "list").stdout.startswith("rosa\t")
