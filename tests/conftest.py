import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import main

SHARED_FACES = Path(__file__).resolve().parent.parent.parent / "shared" / "faces"


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not (SHARED_FACES / "lfw10" / "pairs.txt").is_file():
        pytest.skip(f"real test faces not found at {SHARED_FACES} (see the README: ../shared/faces)")
    return SHARED_FACES


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    """The demo's media, built from photos shipped in scikit-image and matplotlib."""
    pytest.importorskip("skimage", reason="scikit-image provides the astronaut photo")
    pytest.importorskip("matplotlib", reason="matplotlib provides the Grace Hopper photo")
    from matcher.demo import build_demo_folder

    return build_demo_folder(tmp_path_factory.mktemp("demo"))


class Cli:
    """Runs consent-matcher commands in-process against one database."""

    def __init__(self, db: Path, policy: Path | None = None):
        self.db = db
        self.policy = policy
        self.runner = CliRunner()

    def __call__(self, *args, ok: bool = True):
        base = ["--db", str(self.db)] + (["--policy", str(self.policy)] if self.policy else [])
        result = self.runner.invoke(main, [*base, *map(str, args)], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args, ok: bool = True):
        return json.loads(self(*args, "--json", ok=ok).stdout)

    def report(self, *args) -> dict[str, dict]:
        return {os.path.basename(e["path"]): e for e in self.json("report", *args)}


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path / "consent.db")


@contextlib.contextmanager
def running_server(app):
    """``app`` served by uvicorn on a free local port, in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the web app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
