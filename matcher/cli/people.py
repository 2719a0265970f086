"""People who opt out: enroll, list, pause or resume, erase, and their web access codes."""

from __future__ import annotations

import click

from matcher.audit import cli_actor
from matcher.cli.common import App, emit, json_option, pass_app
from matcher.faces import DlibSpec, ModelsMissing, process_engine
from matcher.references import EnrollError, read_references
from matcher.report import printable
from matcher.services import ActionError, access, enrollment, people as people_service
from matcher.store import NotCompacted


@click.command()
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
    against the new references at once. An operator enrolling someone here
    vouches for who they are: the opt-out is verified by the operator.
    """
    name = name.strip()
    if not name:
        raise click.BadParameter("the name must not be empty", param_hint="NAME")
    try:
        references = read_references(list(photos), process_engine(DlibSpec(jitters=jitter)))
        done = enrollment.enroll(app.session, name, references, cli_actor(), public_figure, list(accounts),
                                 verified_by="operator")
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


@click.command()
@json_option
@pass_app
def people(app: App, as_json: bool) -> None:
    """List enrolled people and their number of references."""
    everyone = app.session.store.people.all()
    lines = [f"{p.name}\t{p.references} reference(s)" + ("\tpublic figure" if p.public_figure else "")
             + ("" if p.opted_out else "\topt-out paused")
             + (f"\tverified ({p.verified_by})" if p.verified else "\tunverified")
             + (f"\town thresholds {p.match_threshold} / {p.review_threshold}" if p.match_threshold is not None else "")
             for p in everyone]
    emit(
        [{"name": p.name, "references": p.references, "public_figure": p.public_figure, "accounts": p.accounts,
          "opted_out": p.opted_out, "verified_by": p.verified_by,
          "own_thresholds": None if p.match_threshold is None else {"match": p.match_threshold,
                                                                    "review": p.review_threshold}}
         for p in everyone],
        as_json,
        "\n".join(lines) or "nobody enrolled",
    )


@click.command()
@click.argument("name")
@click.option("--method", type=click.Choice(people_service.VERIFICATION_METHODS), required=True,
              help="How the opt-out was checked to come from the person shown.")
@click.option("--by", "by", required=True, help="Who checked (recorded in the audit trail).")
@json_option
@pass_app
def verify(app: App, name: str, method: str, by: str, as_json: bool) -> None:
    """Mark NAME's opt-out verified: their confident matches may then be removed without a person's look.

    Until verified (self-service enrollment without a liveness check), anyone
    could have enrolled someone else's photos: their matches go to review at most.
    """
    person = app.person(name)
    try:
        changed = people_service.verify(app.session, person, method, by, cli_actor())
    except ActionError as exc:
        raise click.ClickException(str(exc)) from None
    emit({"person": person.name, "verified_by": method, "by": by, "changed": changed}, as_json,
         f"{person.name}'s opt-out is verified ({method}, by {by})" + ("" if changed else " already"))


@click.command("opt-in")
@click.argument("name")
@json_option
@pass_app
def opt_in(app: App, name: str, as_json: bool) -> None:
    """Pause NAME's opt-out: their matches are allowed until `opt-out NAME` (nothing is erased)."""
    _set_opted_out(app, name, False, as_json)


@click.command("opt-out")
@click.argument("name")
@json_option
@pass_app
def opt_out(app: App, name: str, as_json: bool) -> None:
    """Resume NAME's opt-out after `opt-in`: their matches are decided by the rules again."""
    _set_opted_out(app, name, True, as_json)


def _set_opted_out(app: App, name: str, opted_out: bool, as_json: bool) -> None:
    person = app.person(name)
    changed = people_service.set_opted_out(app.session, person, opted_out, cli_actor())
    state = "opted out" if opted_out else "opted in (opt-out paused)"
    emit({"person": person.name, "opted_out": opted_out, "changed": changed}, as_json,
         f"{person.name} is {state}" + ("" if changed else " already"))


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def forget(app: App, name: str, yes: bool, as_json: bool) -> None:
    """Erase NAME: references, consents, reviews, matched faces, matches and decisions.

    The database is then compacted so that none of the erased bytes remain in
    its files. The audit trail keeps only that an erasure of person:<id> happened.
    """
    person = app.person(name)
    if not yes and not click.confirm(f"Erase everything about {person.name}? This cannot be undone", err=True):
        raise click.ClickException("nothing erased")
    try:
        counts = people_service.forget(app.session, person, cli_actor())
    except NotCompacted as exc:
        raise click.ClickException(
            f"{person.name} (person:{person.id}) is erased from the records, but NOT yet from the disk: {exc}. "
            "Stop the other process (a running scan or server), then run `consent-matcher compact`.") from None
    emit({"erased": f"person:{person.id}", **counts}, as_json,
         f"erased {person.name} (person:{person.id}): {counts['references']} reference(s), "
         f"{counts['consents']} consent(s), {counts['matched_faces']} matched face(s) in {counts['media_affected']} "
         f"media, {counts['decisions']} decision(s), {counts['reviews']} review(s); database compacted")


@click.command()
@json_option
@pass_app
def compact(app: App, as_json: bool) -> None:
    """Rewrite the database so that nothing deleted (an erasure) remains in its files.

    `forget` does this itself; when another process held the database open,
    run it again once that process has stopped.
    """
    try:
        app.session.store.compact()
    except NotCompacted as exc:
        raise click.ClickException(f"not compacted: {exc}; stop the other process and run this again") from None
    emit({"compacted": True}, as_json, "database compacted: nothing deleted remains in its files")


@click.command("access-code")
@click.argument("name")
@json_option
@pass_app
def access_code(app: App, name: str, as_json: bool) -> None:
    """Give NAME a new private access code for the web app (the old one stops working); printed once.

    For people enrolled from the command line, or who lost their code.
    """
    person = app.person(name)
    code = access.new_access_code(app.session, person, cli_actor())
    emit({"person": person.name, "access_code": code}, as_json,
         f"access code for {person.name}: {code}\n(shown once; only its hash is kept)")




@click.command()
@json_option
@pass_app
def thresholds(app: App, as_json: bool) -> None:
    """Measure every enrolled person against the stored faces that matched no one, and tighten the
    thresholds of those whose references draw strangers beyond the others ("hubs").

    Scans do this themselves whenever those stored faces have grown by a fifth.
    """
    from matcher.services import calibration

    done = calibration.recompute_thresholds(app.session, cli_actor())
    names = {person.id: person.name for person in app.session.store.people.all()}
    data = done.as_dict(names)
    if done.typical_tail is None:
        text = (f"{done.background} stored faces match no one: too few to measure anyone against "
                f"(each person needs {calibration.hubs.MIN_BACKGROUND} beyond their review limit)")
    else:
        text = "\n".join([
            f"{done.measured} people measured against {done.background} stored faces that match no one; "
            f"typical near-stranger distance {done.typical_tail:.3f}",
            *(f"{row['person']}\tnear strangers at {row['tail']:.3f}: match {row['match']:.3f}, review {row['review']:.3f}"
              for row in data["own_thresholds"]),
            f"{len(done.own)} with their own thresholds, {len(done.changed)} changed",
        ])
    emit(data, as_json, text)


COMMANDS = [enroll, people, verify, opt_in, opt_out, forget, compact, access_code, thresholds]
