"""The audit trail: list its entries, verify its hash chain."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from matcher.audit import verify
from matcher.cli.common import App, emit, json_option, pass_app


@click.group("audit", invoke_without_command=True)
@click.option("--since", help="Only entries from this date or time on (YYYY-MM-DD or ISO time, UTC).")
@json_option
@click.pass_context
def audit_log(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """The audit trail: every decision change, enrollment, consent change, review and erasure."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(App)
    entries = app.session.store.audit.entries(since)
    lines = [
        f"{e.id:>6} {e.at} {e.actor:<18} {e.event:<15} {e.subject}"
        + (f" {e.old or '-'} -> {e.new or '-'}" if e.old or e.new else "")
        + (f" [{e.rule}]" if e.rule else "")
        for e in entries
    ]
    emit([asdict(e) for e in entries], as_json, "\n".join(lines) or "no audit entries")


@audit_log.command("verify")
@json_option
@pass_app
def audit_verify(app: App, as_json: bool) -> None:
    """Check the hash chain of the audit trail; say where it breaks."""
    result = verify(app.session.store.audit.all())
    data = {"entries": result.entries, "ok": result.ok, "broken_at": result.broken_at, "problem": result.problem,
            "head": result.head}
    if result.ok:
        emit(data, as_json, f"audit trail intact: {result.entries} entries, head {result.head}")
        return
    emit(data, as_json, f"audit trail BROKEN at entry {result.broken_at}: {result.problem}")
    sys.exit(1)


COMMANDS = [audit_log]
