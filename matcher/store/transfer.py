"""Moving a whole database to another (SQLite to PostgreSQL, or back): every row, ids and audit chain as they are."""

from __future__ import annotations

from matcher.store.schema import ADDED_COLUMNS, TABLES

def columns_of(table: str) -> dict[str, type]:
    columns = dict(TABLES[table][0])
    columns.update({column: kind for name, column, kind in ADDED_COLUMNS if name == table})
    return columns


def _coerce(value, kind: type):
    """A value as the target column's type (SQLite may hold '1' in an integer column, or 1 in a text one)."""
    if value is None or isinstance(value, kind):
        return value
    if kind is bytes:
        return bytes(value)
    return kind(value)


def copy_rows(source, target) -> dict[str, int]:
    """Copy every row of ``source``'s tables into ``target``'s (two :class:`matcher.store.core.Database`),
    in one transaction of the target; the rows copied per table. ``target`` must hold no records."""
    from matcher.store.core import StoreError

    for table in ("people", "files", "audit"):
        if target.one(f"SELECT count(*) FROM {table}"):
            raise StoreError(f"{target.name} already holds records ({table}): moving a database needs an empty one")
    counts = {}
    with target.write():
        for table in TABLES:
            kinds = columns_of(table)
            names = ", ".join(f'"{column}"' for column in kinds)
            counts[table] = 0

            def rows():
                for row in source.stream(f"SELECT {names} FROM {table}"):
                    counts[table] += 1
                    yield [_coerce(value, kind) for value, kind in zip(row, kinds.values())]

            if table == "meta":  # the target's own keys (schema version, layout) give way to the source's
                target.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", list(rows()))
            else:
                target.bulk_insert(table, list(kinds), rows())
        target.after_copy([table for table, (_, pk, _) in TABLES.items() if pk == "id"])
    return counts
