import json
import os
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
