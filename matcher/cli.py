"""The consent-matcher command line: a thin layer over the library."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import click

from matcher import actions, audit
from matcher.audit import cli_actor
from matcher.decide import refresh_stale_decisions
from matcher.engine import DETECTORS, DlibEngine, ModelsMissing, process_engine
from matcher.enroll import EnrollError, read_references
from matcher.manifest import ManifestError, load_manifest
from matcher.media import DEFAULT_MAX_PIXELS, hash_stream
from matcher.policy import PolicyError, load_policy
from matcher.report import media_reports, printable, write_csv, write_json, write_text
from matcher.scan import ScanOptions, ScanSummary, iter_files, scan as run_scan
from matcher.store import Store, StoreError

ENGINE = DlibEngine.name


class App:
    def __init__(self, db_path: str, policy):
        self.db_path = db_path
        self.policy = policy
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.db_path)
            except (StoreError, OSError) as exc:
                raise click.ClickException(str(exc)) from None
            if refresh_stale_decisions(self._store, self.policy, ENGINE):
                click.echo(f"rules {self.policy.path} in force: decisions re-made from stored facts", err=True)
        return self._store


pass_app = click.make_pass_decorator(App)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def emit(data, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="consent-matcher")
@click.option(
    "--db",
    "db_path",
    envvar="CONSENT_MATCHER_DB",
    default="consent.db",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The database file (env CONSENT_MATCHER_DB). Created readable by its owner only.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    help="The policy rules file (default: data/policy.toml shipped with consent-matcher).",
)
@click.pass_context
def main(ctx: click.Context, db_path: str, policy_path: str | None) -> None:
    """Honour people's wish not to have their photos shared without consent.

    Enroll people who opt out, scan folders of media for their faces, and
    decide allow / review / remove by the shared policy rules.
    """
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise click.ClickException(f"refusing the policy rules: {exc}") from None
    ctx.obj = App(db_path, policy)


@main.command()
@click.argument("name")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--public-figure/--private-person", default=None, help="Whether the person is a public figure.")
@click.option("--account", "accounts", multiple=True, help="The person's own uploader ID (repeatable): media they post themselves is allowed.")
@click.option("--jitter", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Re-sampled copies averaged per reference embedding (see models/ for what it changes).")
@json_option
@pass_app
def enroll(app: App, name: str, photos: tuple[str, ...], public_figure, accounts, jitter: int, as_json: bool) -> None:
    """Register NAME, who opts out, from reference PHOTOS (one face each).

    Only face embeddings are stored, never the photos. Enrolling an existing
    name adds references. Faces already stored from earlier scans are matched
    against the new references at once.
    """
    name = name.strip()
    if not name:
        raise click.BadParameter("the name must not be empty", param_hint="NAME")
    try:
        references = read_references(list(photos), process_engine(jitters=jitter))
        done = actions.enroll(app.store, app.policy, name, references, cli_actor(), public_figure, list(accounts))
    except EnrollError as exc:
        raise click.ClickException("enrollment refused, nothing stored:\n  " + "\n  ".join(exc.problems)) from None
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None
    person, rescan = done.person, done.need_rescan
    lines = [
        f"enrolled {person.name}: {done.added} new reference(s), {person.references} in all"
        f"{' (public figure)' if person.public_figure else ''}; "
        f"{done.stored_faces_matched} face(s) already scanned match them (in {done.media_rematched} media, "
        f"checked in {done.seconds:.2f} s)"
    ]
    if rescan:
        lines.append(
            f"{len(rescan)} scanned file(s) kept no embeddings of unmatched faces (rules: [retention]) and were not "
            f"checked against {person.name}: run `consent-matcher scan --rescan FOLDER` on their folders:"
        )
        lines += [f"  {printable(path)}" for path in rescan[:20]] + ([f"  … and {len(rescan) - 20} more"] if len(rescan) > 20 else [])
    emit(
        {"person": person.name, "references": person.references, "added": done.added,
         "public_figure": person.public_figure, "stored_faces_matched": done.stored_faces_matched,
         "media_rematched": done.media_rematched, "need_rescan": rescan},
        as_json,
        "\n".join(lines),
    )


@main.command("opt-in")
@click.argument("name")
@json_option
@pass_app
def opt_in(app: App, name: str, as_json: bool) -> None:
    """Pause NAME's opt-out: their matches are allowed until `opt-out NAME` (nothing is erased)."""
    _set_opted_out(app, name, False, as_json)


@main.command("opt-out")
@click.argument("name")
@json_option
@pass_app
def opt_out(app: App, name: str, as_json: bool) -> None:
    """Resume NAME's opt-out after `opt-in`: their matches are decided by the rules again."""
    _set_opted_out(app, name, True, as_json)


def _set_opted_out(app: App, name: str, opted_out: bool, as_json: bool) -> None:
    person = _person_or_fail(app, name)
    changed = actions.set_opted_out(app.store, app.policy, person, opted_out, cli_actor())
    state = "opted out" if opted_out else "opted in (opt-out paused)"
    emit({"person": person.name, "opted_out": opted_out, "changed": changed}, as_json,
         f"{person.name} is {state}" + ("" if changed else " already"))


@main.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def forget(app: App, name: str, yes: bool, as_json: bool) -> None:
    """Erase NAME: references, consents, reviews, matched faces, matches and decisions.

    The database is then compacted so that none of the erased bytes remain in
    its files. The audit trail keeps only that an erasure of person:<id> happened.
    """
    person = _person_or_fail(app, name)
    if not yes and not click.confirm(f"Erase everything about {person.name}? This cannot be undone", err=True):
        raise click.ClickException("nothing erased")
    counts = actions.forget(app.store, app.policy, person, cli_actor())
    emit({"erased": f"person:{person.id}", **counts}, as_json,
         f"erased {person.name} (person:{person.id}): {counts['references']} reference(s), "
         f"{counts['consents']} consent(s), {counts['matched_faces']} matched face(s) in {counts['media_affected']} "
         f"media, {counts['decisions']} decision(s), {counts['reviews']} review(s); database compacted")


@main.command()
@json_option
@pass_app
def people(app: App, as_json: bool) -> None:
    """List enrolled people and their number of references."""
    everyone = app.store.people()
    lines = [f"{p.name}\t{p.references} reference(s)" + ("\tpublic figure" if p.public_figure else "")
             + ("" if p.opted_out else "\topt-out paused") for p in everyone]
    emit(
        [{"name": p.name, "references": p.references, "public_figure": p.public_figure, "accounts": p.accounts,
          "opted_out": p.opted_out} for p in everyone],
        as_json,
        "\n".join(lines) or "nobody enrolled",
    )


@main.group()
def consent() -> None:
    """Record, revoke and list consents of enrolled people."""


def _file_sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hash_stream(handle)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _person_or_fail(app: App, name: str):
    person = app.store.person(name)
    if person is None:
        raise click.ClickException(f"nobody named {name!r} is enrolled (see: consent-matcher people)")
    return person


@consent.command("grant")
@click.argument("name")
@click.option("--media", "media", type=click.Path(dir_okay=False), help="One media item (by content: copies are covered too).")
@click.option("--uploader", help="All media posted by this uploader.")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Up to and including this date (YYYY-MM-DD).")
@json_option
@pass_app
def consent_grant(app: App, name: str, media, uploader, until, as_json: bool) -> None:
    """Record that NAME consents to a media item, an uploader, until a date, or a combination."""
    if not (media or uploader or until):
        raise click.UsageError("say what the consent covers: --media, --uploader and/or --until")
    person = _person_or_fail(app, name)
    sha256 = _file_sha256(media) if media else None
    until_text = until.date().isoformat() if until else None
    consent_id = actions.grant_consent(app.store, app.policy, person, cli_actor(), sha256, uploader, until_text)
    scope = ", ".join(
        part for part in (f"media {sha256[:12]}…" if sha256 else "", f"uploader {uploader}" if uploader else "",
                          f"until {until_text}" if until_text else "") if part
    )
    emit({"id": consent_id, "person": person.name, "media_sha256": sha256, "uploader": uploader, "until": until_text},
         as_json, f"consent {consent_id} recorded for {person.name}: {scope}")


@consent.command("revoke")
@click.argument("consent_id", type=int)
@json_option
@pass_app
def consent_revoke(app: App, consent_id: int, as_json: bool) -> None:
    """End consent CONSENT_ID (see: consent list NAME)."""
    try:
        actions.revoke_consent(app.store, app.policy, consent_id, cli_actor())
    except actions.ActionError as exc:
        raise click.ClickException(str(exc)) from None
    emit({"id": consent_id, "revoked": True}, as_json, f"consent {consent_id} revoked")


@consent.command("list")
@click.argument("name")
@json_option
@pass_app
def consent_list(app: App, name: str, as_json: bool) -> None:
    """Show NAME's consents with their status (active, expired, revoked)."""
    person = _person_or_fail(app, name)
    rows = actions.consents(app.store, person.id)
    lines = [
        f"{r['id']}\t{r['status']}\tmedia={r['media_sha256'] or '*'}\tuploader={r['uploader'] or '*'}\t"
        f"until={r['until'] or '-'}\tgranted {r['granted_at']}"
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or f"{person.name} has no consent on record")


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


@main.command()
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
@click.option("--detector", type=click.Choice(DETECTORS), default="blazeface", show_default=True,
              help="hog: search each whole image with dlib's HOG, like face_recognition. blazeface: let the small "
                   "BlazeFace network propose where faces are and run HOG only there (same faces and boxes, several "
                   "times faster on phone photos; see README, Throughput).")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Detect and embed on a Dask cluster: its scheduler's address (tcp://host:8786), or 'local' "
                   "for a LocalCluster of --workers processes. Needs the [dask] extra.")
@click.option("--ship-bytes", is_flag=True,
              help="With --dask: send each file's contents to the workers (they do not share the scanned folders).")
@click.option("--rescan", is_flag=True,
              help="Also read again the files that kept no embeddings of unmatched faces ([retention] in the rules) "
                   "and were not checked against the latest enrollment.")
@click.option("--profile", is_flag=True, help="Also print the time spent in each stage.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (errors are still printed).")
@json_option
@pass_app
def scan(app: App, folders, manifest, workers: int, video_every: float, max_pixels: int, min_face: int | None,
         detector: str, dask_address: str | None, ship_bytes: bool, rescan: bool, profile: bool, quiet: bool, as_json: bool) -> None:
    """Scan FOLDERS recursively for faces of enrolled people and decide on each file.

    Files already scanned and unchanged are skipped, so an interrupted scan
    resumes where it stopped when run again.
    """
    try:
        entries = load_manifest(manifest) if manifest else None
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None
    # Counting first (names only) gives the bar its end and the time left.
    total = None if quiet else sum(1 for _ in iter_files(folders))
    progress = Progress(total, quiet)
    if ship_bytes and not dask_address:
        raise click.UsageError("--ship-bytes goes with --dask")
    options = ScanOptions(max_pixels=max_pixels, video_every_seconds=video_every, min_face=min_face, detector=detector)
    try:
        with contextlib.ExitStack() as stack:
            executor = None
            if dask_address:
                from matcher.cluster import DaskMissing, dask_executor

                try:
                    executor, workers = stack.enter_context(dask_executor(dask_address, workers))
                except DaskMissing as exc:
                    raise click.ClickException(str(exc)) from None
                except OSError as exc:
                    raise click.ClickException(f"cannot reach the Dask scheduler {dask_address}: {exc}") from None
            summary = run_scan(app.store, app.policy, list(folders), entries, workers=workers, options=options,
                               executor=executor, on_file=progress, rescan=rescan, ship_bytes=ship_bytes)
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        progress.close()
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
    if summary.interrupted:
        text.append("interrupted: run the same scan again to finish the remaining files")
    emit(result, as_json, "\n".join(text))
    if summary.interrupted:
        sys.exit(130)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text", show_default=True,
              help="html: a self-contained page of the flagged media with thumbnails and face boxes, for reviewers.")
@click.option("--decision", type=click.Choice(["remove", "review", "allow", "none"]), help="Only media with this decision.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-", help="Write to this file.")
@json_option
@pass_app
def report(app: App, fmt: str, decision: str | None, output, as_json: bool) -> None:
    """Report every scanned file: its faces, who they match, and the decisions with their rule and reason."""
    if as_json:
        fmt = "json"
    if fmt == "html":
        from matcher.html_report import write_html

        items = {(r["path"], r["name"]): r["item"] for r in app.store.db.query(
            "SELECT d.path, d.item, p.name FROM decisions d JOIN people p ON p.id = d.person_id")}
        count = write_html(media_reports(app.store, decision), output, items)
    else:
        writer = {"text": write_text, "json": write_json, "csv": write_csv}[fmt]
        count = writer(media_reports(app.store, decision), output)
    if output.name not in ("-", "<stdout>"):
        what = "flagged media" if fmt == "html" else "media entries"
        click.echo(f"wrote {count} {what} to {output.name}", err=True)


@main.command()
@click.argument("labelled", type=click.Path(exists=True))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="calibration.png", show_default=True,
              help="Write the distance histograms and ROC curve to this PNG.")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False), default="calibration.json",
              show_default=True, help="Write the figures as JSON to this file.")
@click.option("--jitter", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Re-sampled copies averaged per embedding (dlib's published 99.38 % uses 100).")
@json_option
@pass_app
def calibrate(app: App, labelled: str, plot_path: str, output_path: str, jitter: int, as_json: bool) -> None:
    """Measure how well the face model separates people on LABELLED faces, and recommend thresholds.

    LABELLED is an LFW-style pairs.txt (beside <Name>/<Name>_NNNN.jpg folders)
    or a folder of <person>/<photos>, whose every pair of photos is used.
    Recommends `match` (false accepts at most 0.1 %) and `review` (at most 1 %).
    """
    from matcher import calibrate as cal

    try:
        from_folder = os.path.isdir(labelled)
        pairs = cal.folder_pairs(cal.read_folder(labelled)) if from_folder else cal.read_pairs(labelled)
        photos = [path for pair in pairs for path in (pair.first, pair.second)]
        progress = not as_json and sys.stderr.isatty()
        if progress:
            click.echo(f"embedding {len(set(photos))} photos…", err=True)
        embeddings, skipped = cal.embed_photos(photos, process_engine(jitters=jitter), largest_of_several=not from_folder)
        distances, same = cal.pair_distances(pairs, embeddings)
        shipped = {"match": app.policy.match, "review": app.policy.review}
        result = cal.calibrate(labelled, distances, same, len(set(photos)), skipped, shipped)
    except (cal.CalibrationError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None
    for path, reason in sorted(skipped.items()):
        click.echo(f"left out {path}: {reason}", err=True)
    data = {**result.as_dict(), "jitter": jitter, "plot": plot_path, "shipped": shipped}
    with open(output_path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    try:
        cal.plot(result, distances, same, plot_path, shipped)
    except ImportError:
        data["plot"] = None
        click.echo("no plot written: matplotlib is not installed (pip install 'consent-matcher[calibrate]')", err=True)
    one, tenth = result.tar_at_far["1%"], result.tar_at_far["0.1%"]
    lines = [
        f"{labelled}: {result.photos} photos ({len(skipped)} left out), "
        f"{result.same_pairs} same-person and {result.different_pairs} different-person pairs",
        f"same-person distance:      median {result.same_distance['median']:.3f}, "
        f"95th percentile {result.same_distance['p95']:.3f}, max {result.same_distance['max']:.3f}",
        f"different-person distance: min {result.different_distance['min']:.3f}, "
        f"5th percentile {result.different_distance['p5']:.3f}, median {result.different_distance['median']:.3f}",
        f"true accepts at false accepts <= 1 %:   {100 * one['true_accept_rate']:5.1f} % (threshold {one['threshold']:.3f})",
        f"true accepts at false accepts <= 0.1 %: {100 * tenth['true_accept_rate']:5.1f} % (threshold {tenth['threshold']:.3f})"
        + (f"  [{result.different_pairs} different pairs: below 1/{result.different_pairs} = "
           f"{100 * result.smallest_measurable_far:.2f} % cannot be measured]"
           if result.smallest_measurable_far > cal.MATCH_MAX_FAR else ""),
        f"equal-error rate {100 * result.equal_error_rate:.2f} % at {result.equal_error_threshold:.3f}; "
        f"10-fold accuracy {100 * result.ten_fold_accuracy:.2f} % ± {100 * result.ten_fold_std:.2f}",
        *(f"  at {r['threshold']:.2f}: true accepts {100 * r['true_accept_rate']:5.1f} %, "
          f"false accepts {100 * r['false_accept_rate']:5.2f} %" for r in result.at_thresholds),
        f"recommended: match = {result.recommended['match']:.2f}, review = {result.recommended['review']:.2f} "
        f"(rules in force: match = {shipped['match']}, review = {shipped['review']})",
        f"wrote {output_path}" + (f" and {plot_path}" if data["plot"] else ""),
    ]
    emit(data, as_json, "\n".join(lines))


@main.group()
def review() -> None:
    """The review queue: items (a person seen in a file) waiting for a person's decision."""


@review.command("list")
@click.option("--person", "name", help="Only items of this enrolled person.")
@json_option
@pass_app
def review_list(app: App, name: str | None, as_json: bool) -> None:
    """Show pending items with their face box, distance, rule and reason."""
    person = _person_or_fail(app, name) if name else None
    items = actions.pending_reviews(app.store, person.id if person else None)
    lines = []
    for item in items:
        seen = f" at {', '.join(f'{t:g}s' for t in item['frame_times'])}" if item["frame_times"] else ""
        lines.append(f"{item['id']}  {printable(item['path'])}\n    {item['person']} d={item['distance']:.3f} "
                     f"box={item['box']}{seen} [{item['rule']}]: {item['reason']}")
    emit(items, as_json, "\n".join(lines) or "nothing waiting for review")


@review.command("decide")
@click.argument("item")
@click.option("--remove", "verdict", flag_value="remove", help="The media must be removed.")
@click.option("--keep", "verdict", flag_value="keep", help="The media may stay.")
@click.option("--reviewer", required=True, help="Who decides (recorded in the audit trail).")
@click.option("--note", help="Why, in a few words.")
@json_option
@pass_app
def review_decide(app: App, item: str, verdict: str | None, reviewer: str, note: str | None, as_json: bool) -> None:
    """Decide ITEM (an id from `review list`): --remove or --keep.

    The verdict stands until the facts change (a new consent, an opt-in, an
    erasure, another match); then the item is decided by the rules again and,
    if still doubtful, queued again.
    """
    if verdict is None:
        raise click.UsageError("say --remove or --keep")
    try:
        actions.decide_review(app.store, app.policy, item, verdict, reviewer, note)
    except actions.ActionError as exc:
        raise click.ClickException(str(exc)) from None
    emit({"item": item, "verdict": verdict, "reviewer": reviewer, "note": note}, as_json,
         f"item {item}: {verdict} (by {reviewer})")


@main.command("access-code")
@click.argument("name")
@json_option
@pass_app
def access_code(app: App, name: str, as_json: bool) -> None:
    """Give NAME a new private access code for the web app (the old one stops working); printed once.

    For people enrolled from the command line, or who lost their code.
    """
    person = _person_or_fail(app, name)
    with app.store.write():
        code = app.store.set_access_code(person.id)
        audit.append(app.store, cli_actor(), "access-code", f"person:{person.id}")
    emit({"person": person.name, "access_code": code}, as_json,
         f"access code for {person.name}: {code}\n(shown once; only its hash is kept)")


def _credential_group(kind: str, who: str, use: str) -> click.Group:
    """`reviewer` and `apikey`: the same add / list / remove over the credentials of one kind."""

    @click.group(kind, help=f"Tokens for {who} of the web app ({use}).")
    def group() -> None:
        pass

    @group.command("add")
    @click.argument("name")
    @json_option
    @pass_app
    def add(app: App, name: str, as_json: bool) -> None:
        """Create NAME's token (replacing an earlier one) and print it, once: only its hash is kept."""
        name = name.strip()
        if not name:
            raise click.BadParameter("the name must not be empty", param_hint="NAME")
        with app.store.write():
            token = app.store.add_credential(kind, name)
            audit.append(app.store, cli_actor(), f"{kind}-add", f"{kind}:{name}")
        emit({"name": name, "token": token}, as_json,
             f"{kind} {name}: {token}\n(shown once; give it to {name} privately, it cannot be shown again)")

    @group.command("list")
    @json_option
    @pass_app
    def list_(app: App, as_json: bool) -> None:
        """The names holding a token, and when it was made."""
        rows = app.store.credentials(kind)
        emit(rows, as_json, "\n".join(f"{r['name']}\tsince {r['created_at']}" for r in rows) or f"no {kind} tokens")

    @group.command("remove")
    @click.argument("name")
    @json_option
    @pass_app
    def remove(app: App, name: str, as_json: bool) -> None:
        """Withdraw NAME's token; their signed-in sessions end."""
        with app.store.write():
            removed = app.store.remove_credential(kind, name)
            if removed:
                audit.append(app.store, cli_actor(), f"{kind}-remove", f"{kind}:{name}")
        if not removed:
            raise click.ClickException(f"no {kind} named {name!r}")
        emit({"name": name, "removed": True}, as_json, f"{kind} {name} removed")

    return group


main.add_command(_credential_group("reviewer", "reviewers", "the review queue at /review"))
main.add_command(_credential_group("apikey", "platforms", "POST /api/check with the X-API-Key header"))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--max-upload-mb", type=click.IntRange(1, 2048), default=50, show_default=True,
              help="Largest request accepted (photos and videos), in MiB.")
@click.option("--max-pixels", type=click.IntRange(1, 178_956_970), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images larger than this many pixels, before decoding them.")
@click.option("--insecure-cookies", is_flag=True,
              help="Send cookies over plain HTTP too (only for a trial on a trusted network; behind HTTPS leave it off).")
@pass_app
def serve(app: App, host: str, port: int, max_upload_mb: int, max_pixels: int, insecure_cookies: bool) -> None:
    """Run the web app: self-service opt-out, the review queue and POST /api/check.

    It uses the same database and policy rules as the other commands. Put it
    behind an HTTPS reverse proxy: its cookies are marked Secure.
    """
    try:
        import uvicorn

        from matcher.web import WebSettings, create_app
    except ImportError as exc:
        raise click.ClickException(f"the web app needs the [web] extra: pip install 'consent-matcher[web]' ({exc})")
    try:
        web = create_app(app.db_path, app.policy, WebSettings(max_upload_bytes=max_upload_mb * 1024 * 1024,
                                                              max_pixels=max_pixels,
                                                              secure_cookies=not insecure_cookies))
    except (StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"consent-matcher web app on http://{host}:{port}/ (database {app.db_path}); Ctrl-C stops it", err=True)
    uvicorn.run(web, host=host, port=port, log_level="warning", server_header=False)


@main.group("audit", invoke_without_command=True)
@click.option("--since", help="Only entries from this date or time on (YYYY-MM-DD or ISO time, UTC).")
@json_option
@click.pass_context
def audit_log(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """The audit trail: every decision change, enrollment, consent change, review and erasure."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    rows = audit.entries(app.store, since)
    lines = [
        f"{r['id']:>6} {r['at']} {r['actor']:<18} {r['event']:<15} {r['subject']}"
        + (f" {r['old'] or '-'} -> {r['new'] or '-'}" if r["old"] or r["new"] else "")
        + (f" [{r['rule']}]" if r["rule"] else "")
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "no audit entries")


@audit_log.command("verify")
@json_option
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Check the hash chain of the audit trail; say where it breaks."""
    result = audit.verify(app.store)
    data = {"entries": result.entries, "ok": result.ok, "broken_at": result.broken_at, "problem": result.problem,
            "head": result.head}
    if result.ok:
        emit(data, as_json, f"audit trail intact: {result.entries} entries, head {result.head}")
        return
    emit(data, as_json, f"audit trail BROKEN at entry {result.broken_at}: {result.problem}")
    sys.exit(1)
