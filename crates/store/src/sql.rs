//! Portable SQL text. Placeholders are `?` and get rewritten per backend by
//! [`crate::backend::Backend::sql`]; types are limited to TEXT / INTEGER /
//! BIGINT so the same DDL works on SQLite and PostgreSQL.

/// Schema migrations; entry `i` upgrades version `i` to `i + 1`. Append only:
/// never edit a released entry.
pub(crate) const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE meta (
        name TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    )",
        "INSERT INTO meta (name, value) VALUES ('store.users_generation', '0')",
        "CREATE TABLE users (
        username TEXT NOT NULL PRIMARY KEY CHECK (username <> ''),
        ha1_md5 TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL,
        display_name TEXT,
        created_at BIGINT NOT NULL
    )",
        // No foreign key to users: one stale op for a user deleted meanwhile by
        // the CLI must not fail a whole group commit of other users' REGISTERs.
        // user_remove deletes the bindings itself, in the same transaction.
        "CREATE TABLE bindings (
        aor TEXT NOT NULL CHECK (aor <> ''),
        contact TEXT NOT NULL CHECK (contact <> ''),
        expires_at BIGINT NOT NULL,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL CHECK (cseq >= 0 AND cseq <= 4294967295),
        q_milli INTEGER CHECK (q_milli >= 0 AND q_milli <= 1000),
        source TEXT NOT NULL,
        local_addr TEXT NOT NULL,
        instance TEXT,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (aor, contact)
    )",
        "CREATE INDEX bindings_expires_at ON bindings (expires_at)",
    ],
    &[
        // The shield: bans in force (source is an IPv4 address or an IPv6 /64),
        // their history, the operators' requests queued by the CLI, and the
        // run-time trusted list.
        "CREATE TABLE bans (
        source TEXT NOT NULL PRIMARY KEY,
        rule TEXT NOT NULL,
        evidence TEXT NOT NULL,
        since BIGINT NOT NULL,
        until_at BIGINT,
        offense BIGINT NOT NULL
    )",
        "CREATE TABLE ban_events (
        at BIGINT NOT NULL,
        source TEXT NOT NULL,
        event TEXT NOT NULL,
        rule TEXT NOT NULL,
        detail TEXT NOT NULL
    )",
        "CREATE INDEX ban_events_at ON ban_events (at)",
        "CREATE INDEX ban_events_source ON ban_events (source)",
        "CREATE TABLE ban_requests (
        id BIGINT NOT NULL PRIMARY KEY,
        action TEXT NOT NULL CHECK (action IN ('ban', 'unban')),
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        secs BIGINT,
        requested_at BIGINT NOT NULL
    )",
        "CREATE TABLE trusted (
        entry TEXT NOT NULL PRIMARY KEY,
        note TEXT NOT NULL,
        added_at BIGINT NOT NULL
    )",
        "INSERT INTO meta (name, value) VALUES ('store.shield_generation', '0')",
    ],
    &[
        // Call records: times in unix milliseconds; the per-stream statistics
        // are one JSON document (the shape `hardline cdr --format json`
        // prints), the worst MOS a column of its own for filters.
        "CREATE TABLE cdrs (
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        caller_source TEXT NOT NULL,
        callee_target TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        answered_at BIGINT,
        ended_at BIGINT NOT NULL,
        disposition TEXT NOT NULL,
        status BIGINT,
        codec TEXT,
        mos_milli BIGINT,
        streams TEXT NOT NULL
    )",
        "CREATE INDEX cdrs_started_at ON cdrs (started_at)",
    ],
];

/// Highest schema version this code understands.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) const SCHEMA_VERSION_CREATE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";
pub(crate) const SCHEMA_VERSION_GET: &str = "SELECT MAX(version) FROM schema_version";
pub(crate) const SCHEMA_VERSION_CLEAR: &str = "DELETE FROM schema_version";
pub(crate) const SCHEMA_VERSION_SET: &str = "INSERT INTO schema_version (version) VALUES (?)";

/// Reserved meta key prefix for the store's own bookkeeping.
pub(crate) const META_RESERVED_PREFIX: &str = "store.";
pub(crate) const USERS_GENERATION_KEY: &str = "store.users_generation";

pub(crate) const META_GET: &str = "SELECT value FROM meta WHERE name = ?";
pub(crate) const META_SET: &str = "INSERT INTO meta (name, value) VALUES (?, ?) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";
/// Bumps a counter in `meta` (the users or the shield generation).
pub(crate) const USERS_GENERATION_BUMP: &str =
    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = ?";

// created_at is deliberately not updated: an edit does not re-create a user.
pub(crate) const USER_UPSERT: &str = "INSERT INTO users \
     (username, ha1_md5, ha1_sha256, display_name, created_at) VALUES (?, ?, ?, ?, ?) \
     ON CONFLICT (username) DO UPDATE SET ha1_md5 = excluded.ha1_md5, \
     ha1_sha256 = excluded.ha1_sha256, display_name = excluded.display_name";
pub(crate) const USER_GET: &str = "SELECT username, ha1_md5, ha1_sha256, display_name, \
     created_at FROM users WHERE username = ?";
pub(crate) const USER_LIST: &str = "SELECT username, ha1_md5, ha1_sha256, display_name, \
     created_at FROM users ORDER BY username";
pub(crate) const USER_DELETE: &str = "DELETE FROM users WHERE username = ?";

pub(crate) const BINDING_UPSERT: &str = "INSERT INTO bindings \
     (aor, contact, expires_at, call_id, cseq, q_milli, source, local_addr, instance, updated_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (aor, contact) DO UPDATE SET expires_at = excluded.expires_at, \
     call_id = excluded.call_id, cseq = excluded.cseq, q_milli = excluded.q_milli, \
     source = excluded.source, local_addr = excluded.local_addr, \
     instance = excluded.instance, updated_at = excluded.updated_at";
/// Rows per multi-row upsert statement: 10 parameters each stays far below
/// every backend's parameter limit (SQLite 32766, PostgreSQL 65535).
pub(crate) const UPSERT_CHUNK: usize = 64;

/// [`BINDING_UPSERT`] for `rows` rows in one statement: a batch of
/// registrations costs one round trip to the database, not one per row.
pub(crate) fn binding_upsert_rows(rows: usize) -> String {
    self::rows(BINDING_UPSERT, rows)
}

/// A one-row `INSERT ... VALUES (?, ...) [tail]` statement made to take
/// `rows` rows.
pub(crate) fn rows(statement: &str, rows: usize) -> String {
    let start = statement.find("VALUES (").expect("one VALUES tuple") + "VALUES ".len();
    let end = start + statement[start..].find(')').expect("a closed tuple") + 1;
    let (head, tuple, tail) = (
        &statement[..start - "VALUES ".len()],
        &statement[start..end],
        &statement[end..],
    );
    let mut out = String::with_capacity(head.len() + tail.len() + rows * (tuple.len() + 2) + 8);
    out.push_str(head);
    out.push_str("VALUES ");
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(tuple);
    }
    out.push_str(tail);
    out
}

pub(crate) const BINDING_DELETE: &str = "DELETE FROM bindings WHERE aor = ? AND contact = ?";
pub(crate) const BINDING_DELETE_AOR: &str = "DELETE FROM bindings WHERE aor = ?";
pub(crate) const BINDING_LOAD: &str = "SELECT aor, contact, expires_at, call_id, cseq, q_milli, \
     source, local_addr, instance, updated_at FROM bindings \
     WHERE expires_at > ? ORDER BY aor, contact";
pub(crate) const BINDING_FOR: &str = "SELECT aor, contact, expires_at, call_id, cseq, q_milli, \
     source, local_addr, instance, updated_at FROM bindings \
     WHERE aor = ? AND expires_at > ? ORDER BY contact";
pub(crate) const BINDING_PURGE: &str = "DELETE FROM bindings WHERE expires_at <= ?";

pub(crate) const SHIELD_GENERATION_KEY: &str = "store.shield_generation";
pub(crate) const BAN_UPSERT: &str = "INSERT INTO bans \
     (source, rule, evidence, since, until_at, offense) VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT (source) DO UPDATE SET rule = excluded.rule, evidence = excluded.evidence, \
     since = excluded.since, until_at = excluded.until_at, offense = excluded.offense";
pub(crate) const BAN_DELETE: &str = "DELETE FROM bans WHERE source = ?";
pub(crate) const BAN_LOAD: &str =
    "SELECT source, rule, evidence, since, until_at, offense FROM bans ORDER BY source";
pub(crate) const BAN_EVENT_INSERT: &str =
    "INSERT INTO ban_events (at, source, event, rule, detail) VALUES (?, ?, ?, ?, ?)";
pub(crate) const BAN_EVENTS_PRUNE: &str = "DELETE FROM ban_events WHERE at < ?";
/// Keeps the newest [`BAN_EVENTS_MAX`] events.
pub(crate) const BAN_EVENTS_CAP: &str = "DELETE FROM ban_events WHERE at < \
     (SELECT at FROM ban_events ORDER BY at DESC LIMIT 1 OFFSET 100000)";
pub(crate) const BAN_EVENTS_FOR: &str = "SELECT at, source, event, rule, detail FROM ban_events \
     WHERE source = ? ORDER BY at DESC LIMIT ?";
pub(crate) const BAN_EVENTS_ALL: &str =
    "SELECT at, source, event, rule, detail FROM ban_events ORDER BY at DESC LIMIT ?";
pub(crate) const BAN_REQUEST_INSERT: &str = "INSERT INTO ban_requests \
     (id, action, source, reason, secs, requested_at) \
     SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ?, ? FROM ban_requests";
pub(crate) const BAN_REQUEST_LIST: &str = "SELECT id, action, source, reason, secs, requested_at \
     FROM ban_requests ORDER BY id";
pub(crate) const BAN_REQUEST_DELETE_UPTO: &str = "DELETE FROM ban_requests WHERE id <= ?";
pub(crate) const TRUSTED_INSERT: &str =
    "INSERT INTO trusted (entry, note, added_at) VALUES (?, ?, ?) \
     ON CONFLICT (entry) DO UPDATE SET note = excluded.note";
pub(crate) const TRUSTED_DELETE: &str = "DELETE FROM trusted WHERE entry = ?";
pub(crate) const TRUSTED_LIST: &str = "SELECT entry, note, added_at FROM trusted ORDER BY entry";

pub(crate) const CDR_INSERT: &str = "INSERT INTO cdrs (call_id, caller, callee, caller_source, \
     callee_target, started_at, answered_at, ended_at, disposition, status, codec, mos_milli, \
     streams) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Keeps the newest records (the bound is bound as a parameter).
pub(crate) const CDR_CAP: &str = "DELETE FROM cdrs WHERE started_at < \
     (SELECT started_at FROM cdrs ORDER BY started_at DESC LIMIT 1 OFFSET ?)";
/// The newest records first, from a time on.
pub(crate) const CDR_SINCE: &str =
    "SELECT call_id, caller, callee, caller_source, callee_target, started_at, answered_at, \
     ended_at, disposition, status, codec, mos_milli, streams FROM cdrs \
     WHERE started_at >= ? ORDER BY started_at DESC LIMIT ?";

/// Every statement above, for checks over the whole set.
#[cfg(test)]
pub(crate) const ALL: &[&str] = &[
    SCHEMA_VERSION_CREATE,
    SCHEMA_VERSION_GET,
    SCHEMA_VERSION_CLEAR,
    SCHEMA_VERSION_SET,
    META_GET,
    META_SET,
    USERS_GENERATION_BUMP,
    USER_UPSERT,
    USER_GET,
    USER_LIST,
    USER_DELETE,
    BINDING_UPSERT,
    BINDING_DELETE,
    BINDING_DELETE_AOR,
    BINDING_LOAD,
    BINDING_FOR,
    BINDING_PURGE,
    BAN_UPSERT,
    BAN_DELETE,
    BAN_LOAD,
    BAN_EVENT_INSERT,
    BAN_EVENTS_PRUNE,
    BAN_EVENTS_CAP,
    BAN_EVENTS_FOR,
    BAN_EVENTS_ALL,
    BAN_REQUEST_INSERT,
    BAN_REQUEST_LIST,
    BAN_REQUEST_DELETE_UPTO,
    TRUSTED_INSERT,
    TRUSTED_DELETE,
    TRUSTED_LIST,
    CDR_INSERT,
    CDR_CAP,
    CDR_SINCE,
];
