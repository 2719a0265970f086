import itertools
import os
from pathlib import Path

import pytest

from helpers import SHARED_FACES, Cli, files_below, in_ci, stored_content

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser):
    parser.addoption(
        "--backend", choices=BACKENDS, default=os.environ.get("CONSENT_MATCHER_TEST_BACKEND", "sqlite"),
        help="The store every test that opens a database uses (env CONSENT_MATCHER_TEST_BACKEND): an SQLite file, "
             "or a fresh database of a throw-away PostgreSQL cluster started for the session.")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about the SQLite file itself")
    config.addinivalue_line("markers", "postgresql_only(reason): the test is about the PostgreSQL server")


def pytest_report_header(config):
    return f"store backend: {config.getoption('--backend')}"


def pytest_collection_modifyitems(config, items):
    backend = config.getoption("--backend")
    for item in items:
        for marker, needs in (("sqlite_only", "sqlite"), ("postgresql_only", "postgresql")):
            found = item.get_closest_marker(marker)
            if found and backend != needs:
                why = found.args[0] if found.args else ""
                item.add_marker(pytest.mark.skip(reason=f"runs with --backend {needs} ({why})"))


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """The converted models of this session (and of the commands it runs) are kept in a folder of
    its own, not in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENT_MATCHER_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster for the whole session (skips, saying why, where none can run)."""
    from pgcluster import Cluster, binaries

    problem = None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problem = "needs psycopg 3: pip install 'psycopg[binary]' (the [postgres] extra)"
    if problem is None and binaries() is None:
        problem = "needs PostgreSQL's server binaries (initdb, pg_ctl): apt-get install postgresql (bash .ci/run does)"
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    # The tests' cluster need not survive a power cut: no fsync, for speed.
    cluster = Cluster({"fsync": "off", "synchronous_commit": "off", "max_connections": "200"}).start()
    yield cluster
    cluster.stop()


_names = itertools.count(1)


@pytest.fixture
def new_db(request, tmp_path):
    """Make a new, empty database of the backend under test: ``new_db(name)`` is a file path
    (SQLite) or the URL of a fresh database of the session's PostgreSQL cluster."""
    backend = request.config.getoption("--backend")
    made: list[str] = []
    cluster = request.getfixturevalue("pg_cluster") if backend == "postgresql" else None

    def make(name: str = "consent"):
        if cluster is None:
            return tmp_path / f"{name}.db"
        made.append(f"test_{next(_names)}_{name}")
        return cluster.create_database(made[-1])

    yield make
    for name in made:
        cluster.drop_database(name)


@pytest.fixture
def db(new_db):
    """One new, empty database of the backend under test."""
    return new_db()


class PrivateDatabase:
    """A database whose files hold nothing else: ``target`` (a path or URL) and ``stored_bytes()``,
    every byte of its files (SQLite: the file and its journals; PostgreSQL: the whole data
    directory of a cluster of its own, write-ahead log included)."""

    def __init__(self, target, data_directory: Path | None = None):
        self.target, self.data_directory = target, data_directory

    def stored_bytes(self) -> bytes:
        return stored_content(self.target) if self.data_directory is None else files_below(self.data_directory)


@pytest.fixture
def private_db(request, tmp_path):
    """A :class:`PrivateDatabase` of the backend under test (PostgreSQL: a cluster started for this test)."""
    if request.config.getoption("--backend") == "sqlite":
        yield PrivateDatabase(tmp_path / "consent.db")
        return
    request.getfixturevalue("pg_cluster")  # skips or fails, saying why, where none can run
    from pgcluster import Cluster

    with Cluster({"fsync": "off"}) as cluster:
        yield PrivateDatabase(cluster.create_database("private"), cluster.data)


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
def cli(db) -> Cli:
    return Cli(db)
