"""The report of every scanned file, as text, JSON, CSV or an HTML page for reviewers."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from matcher.cli.common import App, json_option, pass_app
from matcher.report import media_reports, write_csv, write_json, write_text


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text", show_default=True,
              help="html: a self-contained page of the flagged media with thumbnails and face boxes, for reviewers.")
@click.option("--decision", type=click.Choice(["remove", "review", "allow", "none"]), help="Only media with this decision.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write to this file (created readable by its owner only: it names people and shows faces).")
@json_option
@pass_app
def report(app: App, fmt: str, decision: str | None, output: str, as_json: bool) -> None:
    """Report every scanned file: its faces, who they match, and the decisions with their rule and reason."""
    if as_json:
        fmt = "json"
    store = app.session.store
    with contextlib.ExitStack() as stack:
        out = sys.stdout if output == "-" else stack.enter_context(private_file(output))
        if fmt == "html":
            from matcher.report.html import write_html

            count = write_html(media_reports(store, decision), out, store.decisions.item_ids())
        else:
            writer = {"text": write_text, "json": write_json, "csv": write_csv}[fmt]
            count = writer(media_reports(store, decision), out)
    if output != "-":
        what = "flagged media" if fmt == "html" else "media entries"
        click.echo(f"wrote {count} {what} to {output}", err=True)


@contextlib.contextmanager
def private_file(path: str):
    """``path`` opened for writing text, readable and writable by its owner only (0600, narrowed if it existed)."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(handle, 0o600)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write the report: {exc.strerror or exc}") from None
    with open(handle, "w", encoding="utf-8") as out:
        yield out


COMMANDS = [report]
