"""The tables, created on first use and brought up to date in place (migrations).

Observations (media, faces with their embeddings, the matches found between
faces and enrolled people) are kept apart from decisions, so that a change of
consent, enrollment or policy re-decides from stored facts without decoding
any media again. Photos are never stored: only embeddings and hashes.
"""

from __future__ import annotations

import hashlib

from matcher.store.core import Database

# 2: one decision per (file, person) instead of per face (a video yields one
# decision per person seen in it). Decisions are derived data, so moving from 1
# drops them and they are re-made from the stored faces and matches.
SCHEMA_VERSION = 2

# table: (columns, primary key, foreign keys)
TABLES = {
    "meta": ({"key": str, "value": str}, "key", []),
    "people": ({"id": int, "name": str, "public_figure": int, "accounts": str, "enrolled_at": str}, "id", []),
    "reference_faces": ({"id": int, "person_id": int, "engine": str, "embedding": bytes, "photo_sha256": str,
                         "added_at": str}, "id", [("person_id", "people", "id")]),
    "consents": ({"id": int, "person_id": int, "media_sha256": str, "uploader": str, "until": str,
                  "granted_at": str, "revoked_at": str}, "id", [("person_id", "people", "id")]),
    "media": ({"sha256": str, "kind": str, "format": str, "status": str, "error": str, "width": int, "height": int,
               "engine": str, "scanned_at": str}, "sha256", []),
    "files": ({"path": str, "sha256": str, "size": int, "mtime_ns": int, "status": str, "error": str,
               "uploader": str, "context": str, "seen_at": str}, "path", []),
    "faces": ({"id": int, "sha256": str, "seq": int, "frame_time": float, "top": int, "right": int, "bottom": int,
               "left": int, "embedding": bytes}, "id", [("sha256", "media", "sha256")]),
    # The observed match of a face: its assigned person and distance.
    "matches": ({"face_id": int, "person_id": int, "distance": float}, "face_id",
                [("face_id", "faces", "id"), ("person_id", "people", "id")]),
    # One decision per person seen in a scanned file; face_id is that
    # person's strongest face in it (confident before possible, then closest: the one that decided).
    "decisions": ({"path": str, "person_id": int, "face_id": int, "action": str, "rule": str, "reason": str,
                   "policy_sha256": str, "decided_at": str}, ("path", "person_id"), []),
    # Web access: reviewer tokens and API keys (kind 'reviewer' / 'apikey'), and
    # signed-in browser sessions. Only SHA-256 hashes of the secrets are kept.
    "credentials": ({"kind": str, "name": str, "token_sha256": str, "created_at": str}, ("kind", "name"), []),
    "sessions": ({"token_sha256": str, "kind": str, "subject": str, "expires_at": str}, "token_sha256", []),
    # The flood guard: a person who matched too many media in one scan.
    "floods": ({"person_id": int, "scan": int, "media": int, "at": str}, ("person_id", "scan"), []),
    # A reviewer's verdict on one item (a person in a file), valid while
    # the facts it was given on (facts_sha256) hold.
    "reviews": ({"path": str, "person_id": int, "verdict": str, "reviewer": str, "note": str, "facts_sha256": str,
                 "decided_at": str}, ("path", "person_id"), []),
    # Stored embeddings packed for retroactive matching (see FaceObservations.blocks).
    "face_blocks": ({"first_face_id": int, "last_face_id": int, "count": int, "face_ids": bytes,
                     "embeddings": bytes}, "first_face_id", []),
    # One key per person for the personal details of their audit entries (see shredding.py).
    "person_keys": ({"person_id": int, "key": bytes}, "person_id", []),
    "audit": ({"id": int, "at": str, "actor": str, "event": str, "subject": str, "old": str, "new": str,
               "rule": str, "policy_sha256": str, "detail": str, "prev_hash": str, "hash": str}, "id", []),
}

# Columns added after their tables first shipped: added in place to older files.
ADDED_COLUMNS = (
    ("files", "last_scan", int),
    ("people", "opted_out", int),
    ("files", "scanned_in", int),
    ("media", "embeddings_dropped", int),
    ("media", "gallery_version", int),
    ("decisions", "item", str),
    ("people", "access_code_sha256", str),
    ("people", "verified_by", str),
    ("people", "verified_at", str),
    ("credentials", "scope", str),
    ("faces", "quality", str),  # JSON: width, sharpness, brightness, contrast, frontal (see matcher.faces.quality)
    ("people", "match_threshold", float),  # a person's own thresholds (hubs): see services/calibration.py
    ("people", "review_threshold", float),
)

# (table, columns, unique)
INDEXES = (
    ("people", ["name"], True),
    ("reference_faces", ["person_id", "photo_sha256"], True),
    ("files", ["sha256"], False),
    ("faces", ["sha256", "seq"], True),
    ("matches", ["person_id"], False),
    ("decisions", ["person_id"], False),
    ("decisions", ["item"], False),
    ("people", ["access_code_sha256"], True),
    ("credentials", ["token_sha256"], True),
)


# Tables whose deleted rows compacting must leave nowhere on disk: all but the audit
# trail, which is only ever appended to (what it says of a person is crypto-shredded).
COMPACTED = tuple(table for table in TABLES if table != "audit")

# Columns whose values PostgreSQL's planner statistics must not copy (pg_statistic keeps
# sample values, which an erasure would not reach): embeddings, names, keys, notes.
PRIVATE_COLUMNS = (("people", "name"), ("people", "accounts"), ("reference_faces", "embedding"),
                   ("faces", "embedding"), ("face_blocks", "embeddings"), ("person_keys", "key"),
                   ("consents", "uploader"), ("files", "uploader"), ("reviews", "note"), ("decisions", "reason"))

_POSTGRES_TYPES = {int: "BIGINT", str: 'TEXT COLLATE "C"', float: "DOUBLE PRECISION", bytes: "BYTEA"}


def create_schema(database: Database) -> None:
    """Create what is missing and migrate an older database; safe to run at every start."""
    if database.dialect == "postgresql":
        _create_postgres(database)
    else:
        _create_sqlite(database)


def _create_sqlite(database: Database) -> None:
    """BEGIN IMMEDIATE: two processes opening a new file create it in turn."""
    db = database.db
    with database.write():
        for table, (columns, pk, foreign_keys) in TABLES.items():
            if table == "decisions" and database.get_meta("schema_version") == "1":
                _migrate_from_1(database)
            db[table].create(columns, pk=pk, foreign_keys=foreign_keys,
                             not_null={"name"} if table == "people" else None, if_not_exists=True)
        added = set()
        for table, column, kind in ADDED_COLUMNS:
            if column not in db[table].columns_dict:
                db[table].add_column(column, kind)
                added.add((table, column))
        if ("people", "verified_by") in added:
            _verify_operator_enrollments(database)
        for table, columns, unique in INDEXES:
            db[table].create_index(columns, unique=unique, if_not_exists=True)
        database.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                         [str(SCHEMA_VERSION)])


def _verify_operator_enrollments(database: Database) -> None:
    """Before opt-outs had to be verified, operators enrolled people from the command line and
    anyone could through the web: the first stay verified (by the operator), the others do not."""
    database.execute(
        "UPDATE people SET verified_by = 'operator', verified_at = enrolled_at WHERE id IN "
        "(SELECT CAST(substr(subject, 8) AS INTEGER) FROM audit WHERE event = 'enroll' AND actor LIKE 'cli:%')")


def _migrate_from_1(database: Database) -> None:
    """Version 1 decided per face: those decisions go (they are derived data) and are made again."""
    database.db["decisions"].drop(ignore=True)
    database.execute("DELETE FROM meta WHERE key = 'policy_sha256'")  # forces re-deciding
    database.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])


def _layout_sha256() -> str:
    return hashlib.sha256(repr((SCHEMA_VERSION, TABLES, ADDED_COLUMNS, INDEXES, PRIVATE_COLUMNS)).encode()).hexdigest()


def _create_postgres(database: Database) -> None:
    """The same tables in PostgreSQL: text compared byte by byte (COLLATE "C", as SQLite does),
    ids from identity columns, embeddings stored uncompressed, no planner statistics of
    private columns. Skipped when the tables are already of this layout; a lock held around the
    transaction makes two processes opening a new database create it in turn."""
    layout = _layout_sha256()

    def current() -> bool:
        return bool(database.one("SELECT to_regclass('meta') IS NOT NULL")) and database.get_meta("schema_layout") == layout

    if current():
        return
    with database.held("schema"), database.write():
        if current():  # another process made them while this one waited: no DDL (it would lock out its work)
            return
        for table, (columns, pk, foreign_keys) in TABLES.items():
            references = {column: (target, key) for column, target, key in foreign_keys}
            definitions = []
            for column, kind in columns.items():
                if column == "id" and pk == "id":
                    definitions.append('"id" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY')
                    continue
                definition = f'"{column}" {_POSTGRES_TYPES[kind]}'
                if column == "name" and table == "people":
                    definition += " NOT NULL"
                if column in references:
                    definition += f' REFERENCES {references[column][0]} ("{references[column][1]}")'
                definitions.append(definition)
            if pk != "id":
                keys = [pk] if isinstance(pk, str) else list(pk)
                definitions.append(f"PRIMARY KEY ({', '.join(chr(34) + k + chr(34) for k in keys)})")
            database.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(definitions)})")
        for table, column, kind in ADDED_COLUMNS:
            database.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {_POSTGRES_TYPES[kind]}')
        for table, (columns, _, _) in TABLES.items():
            for column, kind in columns.items():
                if kind is bytes:  # no compression: packed float16 gains nothing from it and reads slower
                    database.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET STORAGE EXTERNAL')
        for table, column in PRIVATE_COLUMNS:
            database.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET STATISTICS 0')
        for table, columns, unique in INDEXES:
            database.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS "
                             f"idx_{table}_{'_'.join(columns)} ON {table} ({', '.join(columns)})")
        database.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                         [str(SCHEMA_VERSION)])
        database.execute("INSERT INTO meta (key, value) VALUES ('schema_layout', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [layout])
