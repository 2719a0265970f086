"""The audit trail's hash chain: how entries are linked, and how the chain is checked.

Each entry's hash covers its fields and the previous entry's hash, so editing,
deleting or reordering an entry breaks the chain from there on, and
:func:`verify` says where. People appear only as ``person:<id>``: after an
erasure the trail keeps that it happened, not who it was. The store appends
entries inside the write transaction of the change they record.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from matcher.model import AuditEntry

FIELDS = ("at", "actor", "event", "subject", "old", "new", "rule", "policy_sha256", "detail")

# The events that change the facts decisions rest on.
FACT_EVENTS = ("enroll", "consent-grant", "consent-revoke", "opt-in", "opt-out", "erasure", "review", "verify",
               "thresholds")


def cli_actor() -> str:
    """Who runs this command: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def entry_hash(prev_hash: str, fields: dict) -> str:
    payload = json.dumps([fields.get(name) for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "\n" + payload).encode("utf-8")).hexdigest()


@dataclass
class Verification:
    entries: int
    ok: bool
    broken_at: int | None = None
    problem: str | None = None
    head: str | None = None  # the last entry's hash: keep it elsewhere to detect truncation later


def verify(entries: Iterable[AuditEntry]) -> Verification:
    """Recompute the chain from the first entry; stop at the first one that does not fit."""
    prev, count, head = "", 0, None
    for entry in entries:
        count += 1
        if entry.prev_hash != prev:
            return Verification(count, False, entry.id, "its link to the entry before does not match "
                                "(an entry before it was deleted, inserted or changed)")
        if entry_hash(prev, {name: getattr(entry, name) for name in FIELDS}) != entry.hash:
            return Verification(count, False, entry.id, "its content does not match its hash (it was edited)")
        prev = head = entry.hash
    return Verification(count, True, head=head)
