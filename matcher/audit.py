"""The audit trail: an append-only, hash-chained log of every change.

Each entry's hash covers its fields and the previous entry's hash, so editing,
deleting or reordering an entry breaks the chain from there on, and
:func:`verify` says where. People appear only as ``person:<id>``: after an
erasure the trail keeps that it happened, not who it was.

Entries are appended inside the caller's write transaction
(:meth:`Store.write`), so a change and its entry land together or not at all.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass

from matcher.store import Store, now

FIELDS = ("at", "actor", "event", "subject", "old", "new", "rule", "policy_sha256", "detail")


def cli_actor() -> str:
    """Who runs this command: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def entry_hash(prev_hash: str, entry: dict) -> str:
    payload = json.dumps([entry.get(name) for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "\n" + payload).encode("utf-8")).hexdigest()


def append(store: Store, actor: str, event: str, subject: str, *, old: str | None = None, new: str | None = None,
           rule: str | None = None, policy_sha256: str | None = None, detail: str | None = None) -> None:
    """Add one entry (inside the caller's write transaction, or one of its own)."""
    append_many(store, [dict(actor=actor, event=event, subject=subject, old=old, new=new, rule=rule,
                             policy_sha256=policy_sha256, detail=detail)])


def append_many(store: Store, entries: list[dict]) -> None:
    if not entries:
        return
    with store.write():
        last = list(store.db.query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1"))
        prev = last[0]["hash"] if last else ""
        rows = []
        at = now()
        for entry in entries:
            entry = {"at": at, **entry}
            digest = entry_hash(prev, entry)
            rows.append([*(entry.get(name) for name in FIELDS), prev, digest])
            prev = digest
        store.db.conn.executemany(
            f"INSERT INTO audit ({', '.join(FIELDS)}, prev_hash, hash) VALUES ({', '.join('?' * (len(FIELDS) + 2))})",
            rows,
        )


@dataclass
class Verification:
    entries: int
    ok: bool
    broken_at: int | None = None
    problem: str | None = None
    head: str | None = None  # the last entry's hash: keep it elsewhere to detect truncation later


def verify(store: Store) -> Verification:
    """Recompute the chain from the first entry; stop at the first one that does not fit."""
    prev, count, head = "", 0, None
    for row in store.db.query(f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash FROM audit ORDER BY id"):
        count += 1
        if row["prev_hash"] != prev:
            return Verification(count, False, row["id"], "its link to the entry before does not match "
                                "(an entry before it was deleted, inserted or changed)")
        if entry_hash(prev, row) != row["hash"]:
            return Verification(count, False, row["id"], "its content does not match its hash (it was edited)")
        prev = head = row["hash"]
    return Verification(count, True, head=head)


def entries(store: Store, since: str | None = None) -> list[dict]:
    where, params = "", []
    if since:
        where, params = "WHERE at >= ?", [since]
    return list(store.db.query(f"SELECT * FROM audit {where} ORDER BY id", params))
