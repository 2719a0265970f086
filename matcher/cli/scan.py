"""The scan command, and its progress on stderr."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import click

from matcher.cli.common import App, emit, json_option, pass_app
from matcher.faces import DETECTORS, DlibSpec, ModelsMissing
from matcher.manifest import ManifestError, load_manifest
from matcher.media import DEFAULT_MAX_PIXELS, WorkLimits
from matcher.observe import ScanOptions
from matcher.report import printable
from matcher.services.scanning import ScanSummary, scan as run_scan
from matcher.walk import iter_files


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, a plain line every few seconds otherwise.

    Errors are printed as they happen, one line each, with the file's name.
    """

    BAR_WIDTH = 24

    def __init__(self, total: int | None, quiet: bool):
        self.total = total
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = self.last = time.monotonic()

    def __call__(self, summary: ScanSummary, path: str, error: str | None) -> None:
        if error:
            click.echo(("\r\033[K" if self.tty else "") + f"error: {printable(path)}: {error}", err=True)
        if self.quiet:
            return
        now = time.monotonic()
        if now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        line = self.line(summary, now - self.started)
        click.echo(("\r\033[K" + line) if self.tty else line, err=True, nl=not self.tty)

    def line(self, summary: ScanSummary, elapsed: float) -> str:
        done = summary.done
        rate = done / max(elapsed, 1e-9)
        counts = f"{summary.faces} faces, {summary.errors} errors, {rate:.1f} files/s"
        if not self.total:
            return f"{done} files, {counts}"
        filled = min(self.BAR_WIDTH, round(self.BAR_WIDTH * done / self.total))
        left = int((self.total - done) / rate) if rate > 0 else 0
        bar = f"[{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] " if self.tty else ""
        return f"{bar}{done}/{self.total} files, {counts}, {left // 60}:{left % 60:02d} left"

    def close(self) -> None:
        if self.tty and not self.quiet:
            click.echo("\r\033[K", err=True, nl=False)


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), help="Upload metadata: CSV or JSON Lines with path, uploader, context.")
@click.option("--workers", type=click.IntRange(1), default=os.cpu_count() or 1, show_default=True, help="Processes detecting faces.")
@click.option("--video-every", "video_every", type=click.FloatRange(min=0.04), default=1.0, show_default=True,
              help="Seconds between the video frames examined (the first frame is always examined).")
@click.option("--max-pixels", type=click.IntRange(1, 178_956_970), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images larger than this many pixels, before decoding them (decompression bombs); at most Pillow's own hard limit.")
@click.option("--min-face", type=click.IntRange(20), default=None,
              help="Smallest face of interest, in pixels of the original photo: detection is sized for it, which is "
                   "faster on large photos. Default: what face_recognition reaches, ~40 px of a copy of at most "
                   "1600 px (100 px of a 4032 px phone photo).")
@click.option("--detector", type=click.Choice(list(DETECTORS)), default="blazeface", show_default=True,
              help="hog: search each whole image with dlib's HOG, like face_recognition. blazeface: let the small "
                   "BlazeFace network propose where faces are and run HOG only there (same faces and boxes, several "
                   "times faster on phone photos; see README, Throughput).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda: run the face networks (proposals and embeddings) on a CUDA GPU through PyTorch "
                   "(pip install 'consent-matcher[gpu]'); the same embeddings as on the CPU.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Detect and embed on a Dask cluster: its scheduler's address (tcp://host:8786), or 'local' "
                   "for a LocalCluster of --workers processes. Needs the [dask] extra.")
@click.option("--ship-bytes", is_flag=True,
              help="With --dask: send each file's contents to the workers (they do not share the scanned folders).")
@click.option("--file-seconds", type=click.FloatRange(min=1), default=600, show_default=True,
              help="The longest one file may take; past it (a hostile or enormous file) it is an error, and the scan "
                   "goes on. Frames decoded are bounded too (see README, Limits).")
@click.option("--follow-links", is_flag=True,
              help="Read the files that symbolic links below FOLDERS point to outside them (by default such links "
                   "are reported as errors and not followed).")
@click.option("--rescan", is_flag=True,
              help="Also read again the files that kept no embeddings of unmatched faces ([retention] in the rules) "
                   "and were not checked against the latest enrollment.")
@click.option("--profile", is_flag=True, help="Also print the time spent in each stage.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (errors are still printed).")
@json_option
@pass_app
def scan(app: App, folders, manifest, workers: int, video_every: float, max_pixels: int, min_face: int | None,
         detector: str, device: str, dask_address: str | None, ship_bytes: bool, file_seconds: float,
         follow_links: bool,
         rescan: bool, profile: bool, quiet: bool, as_json: bool) -> None:
    """Scan FOLDERS recursively for faces of enrolled people and decide on each file.

    Files already scanned and unchanged are skipped, so an interrupted scan
    resumes where it stopped when run again.
    """
    try:
        entries = load_manifest(manifest) if manifest else None
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    if ship_bytes and not dask_address:
        raise click.UsageError("--ship-bytes goes with --dask")
    check_device(device)
    options = ScanOptions(max_pixels=max_pixels, video_every_seconds=video_every,
                          engine=DlibSpec(detector=detector, min_face=min_face, device=device),
                          limits=WorkLimits(seconds=file_seconds))
    session = app.session
    # Counting first (names only) gives the bar its end and the time left.
    progress = Progress(None if quiet else sum(1 for _ in iter_files(folders)), quiet)
    try:
        with contextlib.ExitStack() as stack:
            executor = None
            if dask_address:
                executor, workers = _dask(stack, dask_address, workers)
            summary = run_scan(session, list(folders), entries, workers=workers, options=options,
                               executor=executor, on_file=progress, rescan=rescan, ship_bytes=ship_bytes,
                               follow_links=follow_links)
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        progress.close()
    _print_summary(app, summary, profile, as_json)
    if summary.disk_full:
        click.echo(f"scan stopped, the database cannot be written (is the disk full?): {summary.disk_full}. "
                   f"{summary.done} file(s) are recorded; free some space and run the same scan again to finish "
                   "the rest.", err=True)
        sys.exit(1)
    if summary.interrupted:
        sys.exit(130)


def check_device(device: str) -> None:
    """Refuse at once, saying why, a device this machine does not have."""
    if device == "cpu":
        return
    from matcher.faces.torch_resnet import torch_device

    try:
        torch_device(device)
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None


def _dask(stack: contextlib.ExitStack, address: str, workers: int):
    """(executor, threads) of the Dask cluster at ``address``, closed with ``stack``."""
    from matcher.cluster import DaskMissing, dask_executor

    try:
        return stack.enter_context(dask_executor(address, workers))
    except DaskMissing as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the Dask scheduler {address}: {exc}") from None


def _print_summary(app: App, summary: ScanSummary, profile: bool, as_json: bool) -> None:
    result = summary.as_dict()
    if not profile:
        result.pop("seconds")
    d = result["decisions"]
    text = [
        f"{summary.files} files: {summary.scanned} scanned, {summary.copies} copies of scanned media, "
        f"{summary.unchanged} unchanged since the last scan, {summary.errors} errors"
        + (f"; {summary.gone} recorded files no longer there, dropped" if summary.gone else ""),
        f"{summary.faces} new faces found; {summary.matches} match(es) of enrolled people (one per person per file)",
        f"decisions: {d['remove']} remove, {d['review']} review, {d['allow']} allow, {d['none']} none",
    ]
    for name in summary.floods:
        text.append(f"flood guard: {name} matched more than {app.policy.flood_limit} media in this scan; "
                    "those matches go to review")
    if summary.unmatched_manifest_paths:
        text.append(f"{summary.unmatched_manifest_paths} manifest entries name files not found in the scanned folders")
    if profile:
        busy = sum(summary.seconds.values()) or 1.0
        text.append(f"time by stage (seconds, summed over workers; {summary.elapsed:.1f}s elapsed):")
        text += [f"  {stage:20} {sec:8.2f}  {100 * sec / busy:5.1f} %" for stage, sec in summary.seconds.most_common()]
    if summary.interrupted and not summary.disk_full:
        text.append("interrupted: run the same scan again to finish the remaining files")
    emit(result, as_json, "\n".join(text))


COMMANDS = [scan]
