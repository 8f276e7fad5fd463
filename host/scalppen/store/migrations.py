"""The store's schema, as a numbered list of migrations.

Migration ``n`` (1-based) brings ``PRAGMA user_version`` from ``n - 1`` to ``n``.
Never edit a published migration: append a new one. All times are Unix seconds
(UTC); ``NULL`` where the pen's clock was unset.
"""

from __future__ import annotations

from typing import Final

_V1: Final = """
CREATE TABLE profiles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('patient', 'user', 'clinician')),
    birth_year  INTEGER,
    created_at  INTEGER NOT NULL,
    notes       TEXT NOT NULL DEFAULT ''
);

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

CREATE TABLE log_records (
    pen_serial  TEXT NOT NULL REFERENCES pens(serial),
    seq         INTEGER NOT NULL,
    time        INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    code        INTEGER NOT NULL,
    depth_um    INTEGER NOT NULL,
    a           INTEGER NOT NULL,
    b           INTEGER NOT NULL,
    synced_at   INTEGER NOT NULL,
    PRIMARY KEY (pen_serial, seq)
) WITHOUT ROWID;
CREATE INDEX log_records_kind ON log_records (pen_serial, kind, seq);

CREATE TABLE log_gaps (
    pen_serial   TEXT NOT NULL REFERENCES pens(serial),
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    detected_at  INTEGER NOT NULL,
    PRIMARY KEY (pen_serial, first_seq)
);

CREATE TABLE sync_state (
    pen_serial   TEXT PRIMARY KEY REFERENCES pens(serial),
    derived_seq  INTEGER NOT NULL DEFAULT -1,
    expected_first_seq  INTEGER
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
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
    UNIQUE (pen_serial, start_seq),
    UNIQUE (pen_serial, end_seq)
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
    id          INTEGER PRIMARY KEY,
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
    id                INTEGER PRIMARY KEY,
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
    id          INTEGER PRIMARY KEY,
    pen_serial  TEXT NOT NULL REFERENCES pens(serial),
    at          INTEGER NOT NULL,
    by_name     TEXT NOT NULL,
    notes       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX services_pen ON services (pen_serial, at);

CREATE TABLE screenings (
    id              INTEGER PRIMARY KEY,
    profile_id      INTEGER NOT NULL REFERENCES profiles(id),
    at              INTEGER NOT NULL,
    answers_json    TEXT NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('clear', 'contraindicated')),
    positives_json  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX screenings_profile ON screenings (profile_id, at);

CREATE TABLE adverse_events (
    id          INTEGER PRIMARY KEY,
    profile_id  INTEGER NOT NULL REFERENCES profiles(id),
    session_id  INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL DEFAULT '',
    notes       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX adverse_profile ON adverse_events (profile_id, at);

CREATE TABLE clearances (
    id              INTEGER PRIMARY KEY,
    lock_id         TEXT NOT NULL,
    rule            INTEGER NOT NULL,
    profile_id      INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    clinician_name  TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role = 'clinician'),
    reason          TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    at              INTEGER NOT NULL
);
CREATE INDEX clearances_lock ON clearances (lock_id);
CREATE INDEX clearances_profile ON clearances (profile_id);

CREATE TABLE attestations (
    id          INTEGER PRIMARY KEY,
    profile_id  INTEGER NOT NULL REFERENCES profiles(id),
    pen_serial  TEXT REFERENCES pens(serial),
    at          INTEGER NOT NULL,
    statement   TEXT NOT NULL
);
CREATE INDEX attestations_profile ON attestations (profile_id, at);

CREATE TABLE permits (
    id              INTEGER PRIMARY KEY,
    pen_serial      TEXT NOT NULL REFERENCES pens(serial),
    profile_id      INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
    nonce           BLOB NOT NULL UNIQUE,
    max_depth_um    INTEGER NOT NULL,
    max_duration_s  INTEGER NOT NULL,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX permits_pen ON permits (pen_serial, issued_at);
"""

#: Log epochs: a pen whose log restarted (seqs from 1 again) keeps the records,
#: gaps and sessions of its earlier log; the new log is epoch + 1. Tables are
#: rebuilt (SQLite cannot change a key in place) with foreign keys off
#: (see db.migrate), so sessions keep their ids and what refers to them.
_V2: Final = """
CREATE TABLE log_records_v2 (
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
) WITHOUT ROWID;
INSERT INTO log_records_v2 (pen_serial, log_epoch, seq, time, kind, flags, code, depth_um,
    a, b, synced_at)
    SELECT pen_serial, 0, seq, time, kind, flags, code, depth_um, a, b, synced_at
    FROM log_records;
DROP TABLE log_records;
ALTER TABLE log_records_v2 RENAME TO log_records;
CREATE INDEX log_records_kind ON log_records (pen_serial, log_epoch, kind, seq);

CREATE TABLE log_gaps_v2 (
    pen_serial   TEXT NOT NULL REFERENCES pens(serial),
    log_epoch    INTEGER NOT NULL DEFAULT 0,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    detected_at  INTEGER NOT NULL,
    PRIMARY KEY (pen_serial, log_epoch, first_seq)
);
INSERT INTO log_gaps_v2 (pen_serial, log_epoch, first_seq, last_seq, detected_at)
    SELECT pen_serial, 0, first_seq, last_seq, detected_at FROM log_gaps;
DROP TABLE log_gaps;
ALTER TABLE log_gaps_v2 RENAME TO log_gaps;

ALTER TABLE sync_state ADD COLUMN log_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sessions_v2 (
    id          INTEGER PRIMARY KEY,
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
INSERT INTO sessions_v2 (id, pen_serial, profile_id, started_at, ended_at, depth_um,
    duration_s, strokes, tolerated, complete, start_seq, end_seq, log_epoch)
    SELECT id, pen_serial, profile_id, started_at, ended_at, depth_um, duration_s, strokes,
    tolerated, complete, start_seq, end_seq, 0 FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v2 RENAME TO sessions;
CREATE INDEX sessions_profile ON sessions (profile_id, ended_at);
CREATE INDEX sessions_pen ON sessions (pen_serial, started_at);
"""

#: Profile names pick profiles on the command line, so two alike (in case or spaces)
#: would be ambiguous: the store refuses them. A database that already holds such
#: twins keeps them all, the later ones renamed "NAME (ID)" so that none is lost.
_V3: Final = """
UPDATE profiles SET name = trim(name) || ' (' || id || ')'
    WHERE id NOT IN (SELECT min(id) FROM profiles GROUP BY lower(trim(name)));
CREATE UNIQUE INDEX profiles_name ON profiles (lower(trim(name)))
"""

#: Rule 22 made real: the toolkit's own id (a clearance names the toolkit it is for;
#: the key that seals this database's permit keys is filed under it), the clinician
#: keys this toolkit trusts, each signed clearance with its statement (its id used
#: once), and every clearance presented, accepted or refused. Clearances recorded
#: before (a typed name, no signature) stay as history but lift nothing.
_V4: Final = """
CREATE TABLE toolkit (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    toolkit_id  TEXT NOT NULL CHECK (length(toolkit_id) = 16)
);
INSERT INTO toolkit (one, toolkit_id) VALUES (1, lower(hex(randomblob(8))));
CREATE TABLE clinician_keys (
    fingerprint  TEXT PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(trim(name)) > 0),
    public_key   BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    trusted_at   INTEGER NOT NULL,
    endorsed_by  TEXT REFERENCES clinician_keys(fingerprint),
    revoked_at   INTEGER
);
ALTER TABLE clearances ADD COLUMN clearance_id TEXT;
ALTER TABLE clearances ADD COLUMN key_fingerprint TEXT REFERENCES clinician_keys(fingerprint);
ALTER TABLE clearances ADD COLUMN issued INTEGER;
ALTER TABLE clearances ADD COLUMN expires INTEGER;
ALTER TABLE clearances ADD COLUMN statement BLOB;
CREATE UNIQUE INDEX clearances_once ON clearances (clearance_id)
    WHERE clearance_id IS NOT NULL;
CREATE TABLE clearance_attempts (
    id               INTEGER PRIMARY KEY,
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

#: Clinic mode, audit: which laptop (its room) and which user made each row that
#: matters: permits, clearances and clearances presented, adverse events,
#: screenings, sterilisation attestations, and a session's rating. The first
#: migration written for both engines (``dialect.ddl`` translates it).
_V5: Final = """
ALTER TABLE permits ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE permits ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE clearances ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE clearances ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE clearance_attempts ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE clearance_attempts ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE adverse_events ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE adverse_events ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE screenings ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE screenings ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE attestations ADD COLUMN made_on TEXT NOT NULL DEFAULT '';
ALTER TABLE attestations ADD COLUMN made_by TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN rated_on TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN rated_by TEXT NOT NULL DEFAULT ''
"""

#: A permit the pen refused and dropped (ARM or START refused, then STOP: the pen
#: is idle) is void: it no longer counts for rule 6 as a session that may be running.
_V6: Final = """
ALTER TABLE permits ADD COLUMN voided_at INTEGER
"""

#: Clinic mode, rule 6 per patient on a shared pen: each patient's opaque 8-byte
#: reference, which a clinic pen's permits carry (random, drawn at the first permit;
#: no personal data reaches the pen). Unique where set.
_V7: Final = """
ALTER TABLE profiles ADD COLUMN pen_ref BLOB;
CREATE UNIQUE INDEX profiles_pen_ref ON profiles (pen_ref)
"""

#: Migration n (1-based) takes the schema from version n - 1 to n.
MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)

#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)
