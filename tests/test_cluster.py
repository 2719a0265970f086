"""Scanning on a Dask LocalCluster: the same results as a local scan, and a worker killed mid-scan."""

import os
import shutil
import signal

import pytest

from conftest import Cli

pytest.importorskip("dask.distributed", reason="Dask is an optional extra: pip install 'consent-matcher[dask]'")

EILEEN = "Eileen Collins"


@pytest.fixture
def folder(demo_folder, shared_faces, tmp_path):
    """The demo's media (one broken) and 20 lfw10 photos of real people."""
    media = tmp_path / "media"
    shutil.copytree(demo_folder["media"], media)
    for photo in sorted((shared_faces / "lfw10").glob("*/*_000[12].jpg")):
        shutil.copy(photo, media / photo.name)
    return media


@pytest.mark.parametrize("ship", [False, True], ids=["shared-folder", "ship-bytes"])
def test_dask_scan_reports_what_a_local_scan_does(demo_folder, folder, tmp_path, ship):
    reports = []
    for name, extra in (("local", []), ("dask", ["--dask", "local", "--workers", "2"] + (["--ship-bytes"] if ship else []))):
        cli = Cli(tmp_path / f"{name}.db")
        cli("enroll", EILEEN, demo_folder["reference"])
        summary = cli.json("scan", folder, *extra)
        assert summary["files"] == 26 and summary["errors"] == 1
        reports.append(cli.json("report"))
    assert reports[0] == reports[1]
    assert sum(entry["decision"] == "remove" for entry in reports[1]) == 4


def test_a_killed_worker_does_not_lose_files(demo_folder, shared_faces, tmp_path):
    from dask.distributed import Client, LocalCluster

    from matcher.policy import load_policy
    from matcher.scan import scan
    from matcher.store import Store

    media = tmp_path / "media"
    media.mkdir()
    photos = sorted((shared_faces / "lfw10").glob("*/*.jpg"))[:40]
    for photo in photos:
        shutil.copy(photo, media / photo.name)
    store = Store(tmp_path / "c.db")
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())

        def kill_one_worker(summary, path, error):
            if summary.done == 5 and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        summary = scan(store, load_policy(), [str(media)], executor=client.get_executor(retries=2, pure=False),
                       workers=2, on_file=kill_one_worker)
    assert killed, "no worker was killed"
    assert (summary.files, summary.scanned, summary.errors) == (40, 40, 0), summary.error_files
    rows = store.db.execute("SELECT count(*), count(DISTINCT path), sum(status = 'ok') FROM files").fetchone()
    assert tuple(rows) == (40, 40, 40)
    assert store.db.execute("SELECT count(*) FROM media").fetchone()[0] == 40
