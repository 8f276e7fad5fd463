"""The store's schema, defined once for both engines.

A new database (an SQLite file or a PostgreSQL database) is made from ``SCHEMA``
and stamped with its version; ``migrations.MIGRATIONS`` brings SQLite files made by
older versions up to the same schema, and every later change is one migration for
both engines. ``tests/host/test_store_schema.py`` checks that an SQLite file
migrated from version 1 and one made from ``SCHEMA`` are the same.

Types are SQLite's names; ``dialect.POSTGRES.ddl`` turns them into PostgreSQL's
(``INTEGER`` 64-bit, ``BLOB`` to ``BYTEA``); ``{id}`` is an auto-numbered id.
Times are Unix seconds (UTC). Columns keep the order the migrations gave them, so
that ``SELECT *`` reads the same on every database.
"""

from __future__ import annotations

from typing import Final

#: The version ``SCHEMA`` is (the number of migrations it includes).
SCHEMA_AT: Final = 4

SCHEMA: Final = """
CREATE TABLE profiles (
    id          {id},
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('patient', 'user', 'clinician')),
    birth_year  INTEGER,
    created_at  INTEGER NOT NULL,
    notes       TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX profiles_name ON profiles (lower(trim(name)));

CREATE TABLE pens (
    serial            TEXT PRIMARY KEY,
    model             TEXT NOT NULL DEFAULT '',
    fw_version        TEXT NOT NULL DEFAULT '',
    hw_rev            TEXT NOT NULL DEFAULT '',
    ble_address       TEXT,
    permit_key        BLOB,
    paired_at         INTEGER,
    limits_json       TEXT NOT NULL DEFAULT '{}',
    owner_profile_id  INTEGER REFERENCES profiles(id) ON DELETE SET NULL
);

CREATE TABLE sync_state (
    pen_serial          TEXT PRIMARY KEY REFERENCES pens(serial),
    derived_seq         INTEGER NOT NULL DEFAULT -1,
    expected_first_seq  INTEGER,
    log_epoch           INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE log_records (
    pen_serial  TEXT NOT NULL REFERENCES pens(serial),
    log_epoch   INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    code        INTEGER NOT NULL,
    depth_um    INTEGER NOT NULL,
    a           INTEGER NOT NULL,
    b           INTEGER NOT NULL,
    synced_at   INTEGER NOT NULL,
    PRIMARY KEY (pen_serial, log_epoch, seq)
){without_rowid};
CREATE INDEX log_records_kind ON log_records (pen_serial, log_epoch, kind, seq);

CREATE TABLE log_gaps (
    pen_serial   TEXT NOT NULL REFERENCES pens(serial),
    log_epoch    INTEGER NOT NULL DEFAULT 0,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    detected_at  INTEGER NOT NULL,
    PRIMARY KEY (pen_serial, log_epoch, first_seq)
);

CREATE TABLE sessions (
    id          {id},
    pen_serial  TEXT NOT NULL REFERENCES pens(serial),
    profile_id  INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    started_at  INTEGER,
    ended_at    INTEGER,
    depth_um    INTEGER NOT NULL,
    duration_s  REAL NOT NULL DEFAULT 0,
    strokes     INTEGER NOT NULL DEFAULT 0,
    tolerated   INTEGER CHECK (tolerated IN (0, 1)),
    complete    INTEGER NOT NULL DEFAULT 1,
    start_seq   INTEGER,
    end_seq     INTEGER,
    log_epoch   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (pen_serial, log_epoch, start_seq),
    UNIQUE (pen_serial, log_epoch, end_seq)
);
CREATE INDEX sessions_profile ON sessions (profile_id, ended_at);
CREATE INDEX sessions_pen ON sessions (pen_serial, started_at);

CREATE TABLE telemetry_summaries (
    session_id     INTEGER PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    samples        INTEGER NOT NULL,
    rate_mean_x10  INTEGER NOT NULL,
    rate_min_x10   INTEGER NOT NULL,
    rate_max_x10   INTEGER NOT NULL,
    temp_max_c10   INTEGER NOT NULL,
    motor_ma_max   INTEGER NOT NULL,
    battery_start  INTEGER NOT NULL,
    battery_end    INTEGER NOT NULL,
    contact_pct    INTEGER NOT NULL
);

CREATE TABLE events (
    id          {id},
    at          INTEGER NOT NULL,
    pen_serial  TEXT REFERENCES pens(serial),
    profile_id  INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    code        INTEGER NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    data_json   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_pen ON events (pen_serial, at);

CREATE TABLE wear_snapshots (
    id                {id},
    pen_serial        TEXT NOT NULL REFERENCES pens(serial),
    at                INTEGER NOT NULL,
    cartridge         INTEGER NOT NULL,
    cart_id           TEXT NOT NULL,
    needles           INTEGER NOT NULL,
    strokes_used      INTEGER NOT NULL,
    strokes_rated     INTEGER NOT NULL,
    first_use         INTEGER,
    expiry            INTEGER,
    cart_state        INTEGER NOT NULL,
    hp_strokes        INTEGER NOT NULL,
    hp_punctures      INTEGER NOT NULL,
    hp_sessions       INTEGER NOT NULL,
    hp_run_s          INTEGER NOT NULL,
    hp_first_session  INTEGER
);
CREATE INDEX wear_pen ON wear_snapshots (pen_serial, at);
CREATE INDEX wear_cart ON wear_snapshots (cart_id, at);

CREATE TABLE services (
    id          {id},
    pen_serial  TEXT NOT NULL REFERENCES pens(serial),
    at          INTEGER NOT NULL,
    by_name     TEXT NOT NULL,
    notes       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX services_pen ON services (pen_serial, at);

CREATE TABLE screenings (
    id              {id},
    profile_id      INTEGER NOT NULL REFERENCES profiles(id),
    at              INTEGER NOT NULL,
    answers_json    TEXT NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('clear', 'contraindicated')),
    positives_json  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX screenings_profile ON screenings (profile_id, at);

CREATE TABLE adverse_events (
    id          {id},
    profile_id  INTEGER NOT NULL REFERENCES profiles(id),
    session_id  INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL DEFAULT '',
    notes       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX adverse_profile ON adverse_events (profile_id, at);

CREATE TABLE clinician_keys (
    fingerprint  TEXT PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(trim(name)) > 0),
    public_key   BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    trusted_at   INTEGER NOT NULL,
    endorsed_by  TEXT REFERENCES clinician_keys(fingerprint),
    revoked_at   INTEGER
);

CREATE TABLE clearances (
    id               {id},
    lock_id          TEXT NOT NULL,
    rule             INTEGER NOT NULL,
    profile_id       INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    clinician_name   TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role = 'clinician'),
    reason           TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    at               INTEGER NOT NULL,
    clearance_id     TEXT,
    key_fingerprint  TEXT REFERENCES clinician_keys(fingerprint),
    issued           INTEGER,
    expires          INTEGER,
    statement        BLOB
);
CREATE INDEX clearances_lock ON clearances (lock_id);
CREATE INDEX clearances_profile ON clearances (profile_id);
CREATE UNIQUE INDEX clearances_once ON clearances (clearance_id)
    WHERE clearance_id IS NOT NULL;

CREATE TABLE attestations (
    id          {id},
    profile_id  INTEGER NOT NULL REFERENCES profiles(id),
    pen_serial  TEXT REFERENCES pens(serial),
    at          INTEGER NOT NULL,
    statement   TEXT NOT NULL
);
CREATE INDEX attestations_profile ON attestations (profile_id, at);

CREATE TABLE permits (
    id              {id},
    pen_serial      TEXT NOT NULL REFERENCES pens(serial),
    profile_id      INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    nonce           BLOB NOT NULL UNIQUE,
    max_depth_um    INTEGER NOT NULL,
    max_duration_s  INTEGER NOT NULL,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX permits_pen ON permits (pen_serial, issued_at);

CREATE TABLE toolkit (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    toolkit_id  TEXT NOT NULL CHECK (length(toolkit_id) = 16)
);

CREATE TABLE clearance_attempts (
    id               {id},
    at               INTEGER NOT NULL,
    lock_id          TEXT NOT NULL,
    profile_id       INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    key_fingerprint  TEXT,
    clearance_id     TEXT,
    accepted         INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    detail           TEXT NOT NULL,
    presented        TEXT NOT NULL
);
CREATE INDEX clearance_attempts_at ON clearance_attempts (at)
"""
