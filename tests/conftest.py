from pathlib import Path

import pytest

from helpers import SHARED_FACES, Cli


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


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path / "consent.db")
