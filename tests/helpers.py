"""What tests share: the command line run in-process, a server in a thread, made-up embeddings, a clock."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from matcher.cli import main
from matcher.clock import SystemClock


# Real faces for tests, beside the project (see its README); never copied into it.
SHARED_FACES = Path(__file__).resolve().parent.parent.parent / "shared" / "faces"


class DayClock(SystemClock):
    """The system's time on another day: what the tool would decide on that day."""

    def __init__(self, day: date):
        self.day = day.isoformat()

    def today(self) -> str:
        return self.day


class Cli:
    """Runs consent-matcher commands in-process against one database (on ``clock``'s day, when given)."""

    def __init__(self, db: Path, policy: Path | None = None, clock=None):
        self.db = db
        self.policy = policy
        self.clock = clock
        self.runner = CliRunner()

    def __call__(self, *args, ok: bool = True):
        base = ["--db", str(self.db)] + (["--policy", str(self.policy)] if self.policy else [])
        result = self.runner.invoke(main, [*base, *map(str, args)], catch_exceptions=False, obj=self.clock)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args, ok: bool = True):
        return json.loads(self(*args, "--json", ok=ok).stdout)

    def report(self, *args) -> dict[str, dict]:
        return {os.path.basename(e["path"]): e for e in self.json("report", *args)}


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


def unit(seed) -> np.ndarray:
    """A made-up embedding: a random unit vector."""
    vector = np.random.default_rng(seed).normal(size=128)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near(vector, distance, seed=99) -> np.ndarray:
    """A vector at exactly ``distance`` from ``vector``."""
    direction = np.random.default_rng(seed).normal(size=128)
    direction -= direction.dot(vector) * vector
    return (vector + distance * direction / np.linalg.norm(direction)).astype(np.float32)


def in_ci() -> bool:
    """Under CI a missing tool fails the run instead of skipping what needs it."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def client_for(db, **settings):
    """A test client of the web app on ``db`` (its cookies are Secure: it speaks HTTPS), errors as pages."""
    from fastapi.testclient import TestClient

    from matcher.policy import load_policy
    from matcher.web import WebSettings, create_app

    return TestClient(create_app(str(db), load_policy(None), WebSettings(**settings)), base_url="https://testserver",
                      raise_server_exceptions=False)


def csrf_token(client) -> str:
    """The CSRF token the site gives ``client`` (a form must send it back)."""
    client.get("/")
    return client.cookies["cm_csrf"]


def shipped_rules_with(old: str, new: str) -> str:
    """The shipped rules file's text with ``old`` replaced by ``new`` (which must be there: a test
    of an edited rule would otherwise run the shipped one and prove nothing)."""
    from matcher.policy import default_policy_path

    shipped = default_policy_path().read_text()
    assert old in shipped, f"the shipped rules no longer say {old!r}"
    return shipped.replace(old, new)


def write_video(path, fourcc: str, frames: list[np.ndarray], fps: float = 10) -> Path:
    """Write RGB frames as a video in ``fourcc`` (e.g. "mp4v": lossy, as an upload would be)."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path.name}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def on_canvas(face: Image.Image, face_width: int, at: tuple[int, int], size=(4032, 3024)) -> Image.Image:
    """A phone-size photo: textured background with the picture pasted at ``at``, ``face_width`` wide."""
    rng = np.random.default_rng(7)
    noise = rng.integers(90, 170, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise).resize(size, Image.Resampling.BILINEAR)
    height = round(face.height * face_width / face.width)
    canvas.paste(face.resize((face_width, height), Image.Resampling.LANCZOS), at)
    return canvas


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 900):
    """A real headless Chromium driven through ChromeDriver (selenium).

    Skips, saying why, where the browser is missing; under CI its absence fails
    the run instead (these are the only real-browser checks).
    """
    import pytest

    if not (CHROMIUM and CHROMEDRIVER):
        reason = "needs Debian's chromium and chromium-driver (bash .ci/run installs them)"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def sideways_overflow(driver) -> int:
    """How many pixels the page is wider than the window: above 0, it scrolls sideways."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


class _Raw:
    """A database's own connection for tests to look underneath the store: ``execute(sql, params)``
    with ``?`` placeholders on either backend."""

    def __init__(self, db):
        self.postgres = str(db).startswith("postgresql://")
        if self.postgres:
            import psycopg

            self.conn = psycopg.connect(str(db), autocommit=True)
        else:
            import sqlite3

            self.conn = sqlite3.connect(db, timeout=5)

    def execute(self, sql: str, params=()):
        if self.postgres:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(sql, params)

    def commit(self) -> None:
        if not self.postgres:
            self.conn.commit()


@contextlib.contextmanager
def raw(db):
    """``db`` (a file path or a postgresql:// URL) opened underneath the store, closed after."""
    connection = _Raw(db)
    try:
        yield connection
        connection.commit()
    finally:
        connection.conn.close()


def store_created(db) -> bool:
    """Whether the store touched ``db``: its file exists (SQLite), its tables do (PostgreSQL)."""
    if not str(db).startswith("postgresql://"):
        return Path(db).exists()
    with raw(db) as conn:
        return conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]


def files_below(folder: Path) -> bytes:
    """Every byte of every file below ``folder`` (a PostgreSQL cluster's data directory, say)."""
    return b"".join(p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file())


def stored_content(db) -> bytes:
    """What ``db`` holds, to search for what must not be there: the file's bytes (SQLite), or every
    row of every table (PostgreSQL; the cluster's files are searched where a test has a cluster
    of its own, see the ``private_db`` fixture)."""
    if not str(db).startswith("postgresql://"):
        db = Path(db)
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    from matcher.store.schema import TABLES

    with raw(db) as conn:
        return b"".join(repr(conn.execute(f"SELECT * FROM {table}").fetchall()).encode() for table in TABLES)
