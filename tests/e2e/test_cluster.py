"""Scanning on a Dask LocalCluster through the project's own cluster code, on real faces.

The same results as a local scan; a worker killed mid-scan loses no file; a
file whose worker dies on every try is recorded as an error, and the rest goes on.
"""

import os
import shutil

import pytest
from PIL import Image

from engines import KillOnceSpec, KillOnSpec
from helpers import Cli

pytest.importorskip("dask.distributed", reason="Dask is an optional extra: pip install 'consent-matcher[dask]'")

EILEEN = "Eileen Collins"


def crops(demo_folder, media, count: int) -> None:
    """``count`` distinct photos (different crops) of each of the two package-shipped faces."""
    for name in ("portrait", "hopper"):
        photo = Image.open(demo_folder[name])
        for i in range(count):
            photo.crop((3 * i, 2 * i, photo.width - 2 * i, photo.height - 3 * i)).save(media / f"{name}-{i:02d}.jpg")


@pytest.fixture
def folder(demo_folder, tmp_path):
    """The demo's media (one broken) and 20 more photos of the two faces."""
    media = tmp_path / "media"
    shutil.copytree(demo_folder["media"], media)
    crops(demo_folder, media, 10)
    return media


@pytest.mark.parametrize("ship", [False, True], ids=["shared-folder", "ship-bytes"])
def test_dask_scan_reports_what_a_local_scan_does(new_db, demo_folder, folder, tmp_path, ship):
    reports = []
    for name, extra in (("local", []), ("dask", ["--dask", "local", "--workers", "2"] + (["--ship-bytes"] if ship else []))):
        cli = Cli(new_db(name))
        cli("enroll", EILEEN, demo_folder["reference"])
        summary = cli.json("scan", folder, *extra)
        assert summary["files"] == 26 and summary["errors"] == 1
        reports.append(cli.json("report"))
    assert reports[0] == reports[1]
    # The portrait, its mirror image, the pair, the press photo and her 10 crops.
    assert sum(entry["decision"] == "remove" for entry in reports[1]) == 14


def scan_on_local_cluster(db, media, engine):
    from matcher.cluster import dask_executor
    from matcher.observe import ScanOptions
    from matcher.policy import load_policy
    from matcher.services import open_session
    from matcher.services.scanning import scan

    with open_session(db, load_policy()) as session, dask_executor("local", 2) as (executor, threads):
        return scan(session, [str(media)], executor=executor, workers=threads, options=ScanOptions(engine=engine))


def test_a_killed_worker_does_not_lose_files(new_db, demo_folder, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    crops(demo_folder, media, 8)
    marker = tmp_path / "a-worker-was-killed"
    db = new_db("c")
    summary = scan_on_local_cluster(db, media, KillOnceSpec(str(marker)))
    assert marker.exists(), "no worker was killed"
    assert (summary.files, summary.scanned, summary.errors) == (16, 16, 0), summary.error_files
    assert summary.decisions["none"] == 16 and summary.faces >= 16  # every photo read, its face found
    report = Cli(db).json("report")
    assert len(report) == len({entry["path"] for entry in report}) == 16
    assert all(entry["status"] == "ok" and entry["faces"] for entry in report)


def test_a_file_that_fails_on_every_worker_is_an_error(new_db, demo_folder, tmp_path):
    import dask

    media = tmp_path / "media"
    media.mkdir()
    crops(demo_folder, media, 3)
    Image.open(demo_folder["hopper"]).resize((333, 333)).save(media / "poison.jpg")
    # Each death of a worker counts against the tasks on it; past this many, Dask gives a task up
    # (KilledWorker). Tasks wait on the scheduler, not queued on workers, so only the file being
    # read when a worker dies is blamed, whatever the machine's load.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        db = new_db("c")
        summary = scan_on_local_cluster(db, media, KillOnSpec(width=333))
    assert (summary.files, summary.scanned, summary.errors) == (7, 7, 1)
    [(path, error)] = summary.error_files
    assert os.path.basename(path) == "poison.jpg" and error.startswith("no worker could process the file (KilledWorker")
    report = {os.path.basename(e["path"]): e for e in Cli(db).json("report")}
    assert report["poison.jpg"]["status"] == "error"
    assert all(entry["status"] == "ok" for name, entry in report.items() if name != "poison.jpg")
