"""Calibrate the face model's thresholds on labelled faces."""

from __future__ import annotations

import json
import os
import sys

import click

from matcher.cli.common import App, emit, json_option, pass_app
from matcher.faces import DlibSpec, ModelsMissing, process_engine
from matcher.observe import SCAN_ENGINE
from matcher.policy import BAND_LIMITS


@click.command()
@click.argument("labelled", type=click.Path(exists=True))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default="calibration.png", show_default=True,
              help="Write the distance histograms and ROC curve to this PNG.")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False), default="calibration.json",
              show_default=True, help="Write the figures as JSON to this file.")
@click.option("--jitter", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Re-sampled copies averaged per embedding (dlib's published 99.38 % uses 100).")
@click.option("--bands", is_flag=True,
              help="Per band of face quality instead: degrade the photos (faces of 28/32/40/60/90 px, JPEG 20, blur, "
                   "motion, low light with noise, grey, lower face covered), measure each face as a scan does, "
                   "and give true and false accepts and the thresholds per band (those of the rules file, or a "
                   "default layout).")
@json_option
@pass_app
def calibrate(app: App, labelled: str, plot_path: str, output_path: str, jitter: int, bands: bool,
              as_json: bool) -> None:
    """Measure how well the face model separates people on LABELLED faces, and recommend thresholds.

    LABELLED is an LFW-style pairs.txt (beside <Name>/<Name>_NNNN.jpg folders)
    or a folder of <person>/<photos>, whose every pair of photos is used.
    Recommends `match` (false accepts at most 0.1 %) and `review` (at most 1 %).
    """
    from matcher import calibrate as cal

    if bands:
        return _by_band(app, labelled, output_path, as_json)

    try:
        from_folder = os.path.isdir(labelled)
        pairs = cal.folder_pairs(cal.read_folder(labelled)) if from_folder else cal.read_pairs(labelled)
        photos = [path for pair in pairs for path in (pair.first, pair.second)]
        progress = not as_json and sys.stderr.isatty()
        if progress:
            click.echo(f"embedding {len(set(photos))} photos…", err=True)
        embeddings, skipped = cal.embed_photos(photos, process_engine(DlibSpec(jitters=jitter)),
                                              largest_of_several=not from_folder)
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


def _by_band(app: App, labelled: str, output_path: str, as_json: bool) -> None:
    from matcher import calibrate as cal

    folder = labelled if os.path.isdir(labelled) else os.path.dirname(os.path.abspath(labelled))
    try:
        people = cal.read_folder(folder)
    except cal.CalibrationError as exc:
        raise click.ClickException(str(exc)) from None
    # Tightest first: a probe is then counted in the band whose thresholds a scan would apply to it.
    layout = [(band.id, {key: getattr(band, key)
                         for key in ("frontal", *BAND_LIMITS)
                         if getattr(band, key) is not None})
              for band in sorted(app.policy.bands, key=lambda band: band.match)] or list(cal.DEFAULT_BANDS)
    if not as_json and sys.stderr.isatty():
        click.echo(f"degrading and embedding {sum(map(len, people.values()))} photos x {len(cal.DEGRADATIONS)}…",
                   err=True)
    try:
        clean, probes, missed = cal.make_probes(people, process_engine(SCAN_ENGINE), layout)
    except ModelsMissing as exc:
        raise click.ClickException(str(exc)) from None
    owners = {photo: person for person, photos in people.items() for photo in photos}
    shipped = {"match": app.policy.match, "review": app.policy.review}
    data = {"source": folder, "layout": [{"id": band, **limits} for band, limits in layout], "missed": missed,
            "bands": cal.band_rates(clean, owners, probes, "band", shipped),
            "conditions": cal.band_rates(clean, owners, probes, "condition", shipped), "shipped": shipped}
    with open(output_path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    lines = [f"{folder}: {len(clean)} photos, {len(probes)} probes; faces not found: "
             + ", ".join(f"{condition} {count}" for condition, count in missed.items() if count)]
    for title, key in (("band", "bands"), ("condition", "conditions")):
        lines.append(f"by {title}: probes, TAR / FAR at match {shipped['match']} and review {shipped['review']}, "
                     "thresholds at FAR <= 0.1 % and <= 1 % (TAR there)")
        for name, row in data[key].items():
            at = [f"{100 * row[f'at_{t}']['true_accept_rate']:5.1f} / {100 * row[f'at_{t}']['false_accept_rate']:5.2f} %"
                  for t in ("match", "review")]
            far = [f"{row[k]['threshold']:.2f} ({100 * row[k]['true_accept_rate']:.1f} %)" if row[k] else "unmeasurable"
                   for k in ("match_at_far", "review_at_far")]
            lines.append(f"  {name:12} {row['probes']:5d}  {at[0]}   {at[1]}   {far[0]:>14}  {far[1]:>14}")
    lines.append(f"wrote {output_path}")
    emit(data, as_json, "\n".join(lines))


COMMANDS = [calibrate]
