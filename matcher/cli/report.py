"""The report of every scanned file, as text, JSON, CSV or an HTML page for reviewers."""

from __future__ import annotations

import click

from matcher.cli.common import App, json_option, pass_app
from matcher.report import media_reports, write_csv, write_json, write_text


@click.command()
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
    store = app.session.store
    if fmt == "html":
        from matcher.report.html import write_html

        count = write_html(media_reports(store, decision), output, store.decisions.item_ids())
    else:
        writer = {"text": write_text, "json": write_json, "csv": write_csv}[fmt]
        count = writer(media_reports(store, decision), output)
    if output.name not in ("-", "<stdout>"):
        what = "flagged media" if fmt == "html" else "media entries"
        click.echo(f"wrote {count} {what} to {output.name}", err=True)


COMMANDS = [report]
