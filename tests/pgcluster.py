"""A throw-away PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temporary folder.

Run as the current user, or, when that is root (which initdb refuses), as the
unprivileged ``postgres`` user through ``runuser``. It listens on a free port
of 127.0.0.1 only, trusts local connections of its one role, and is stopped
and deleted by :meth:`Cluster.stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "matcher"
# What erasure needs of the server (see the README): segments removed, not recycled.
ERASURE_SETTINGS = {"wal_recycle": "off", "wal_keep_size": "0"}


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, settings: dict[str, str] | None = None, bin_dir: Path | None = None):
        self.bin = bin_dir or binaries()
        if self.bin is None:
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.folder = Path(tempfile.mkdtemp(prefix="matcher-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"  # outside the data directory
        self.port = _free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                         "unix_socket_directories": str(self.folder), **ERASURE_SETTINGS, **(settings or {})}
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            os.chmod(self.folder, 0o700)
            shutil.chown(self.folder, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.started = False

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self.prefix, *command], capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> "Cluster":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                            "stop"], capture_output=True, timeout=120)
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
