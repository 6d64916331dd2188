//! Typed store errors, classified from driver errors so callers can decide
//! between "retry later" (500 + Retry-After) and "give up".

use sqlx::error::DatabaseError;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is locked by another writer and `busy_timeout` elapsed
    /// (SQLITE_BUSY / SQLITE_LOCKED, or no pooled connection became free).
    #[error("database busy")]
    Busy,
    /// No space left for the database (SQLITE_FULL, ENOSPC).
    #[error("database or disk is full")]
    Full,
    /// I/O failure reading or writing the database files.
    #[error("database I/O error: {0}")]
    Io(String),
    /// The file is not a database or its content is damaged.
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer release; we refuse to touch it.
    #[error("database schema version {found} is newer than supported version {supported}; upgrade hardline")]
    SchemaTooNew { found: i64, supported: i64 },
    /// Backend or URL this build cannot handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The data was rejected (constraint violation, out-of-range value,
    /// reserved key); retrying the same request cannot succeed.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// True when the same operation may succeed later without any change
    /// (the SIP layer answers 500 with Retry-After).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy | StoreError::Full)
    }
}

// SQLite primary result codes (https://www.sqlite.org/rescode.html). sqlx
// reports the *extended* code; the primary code is its low byte.
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_NOTADB: i64 = 26;

/// Classify a SQLite extended result code.
pub(crate) fn classify_sqlite(extended: i64, message: &str) -> StoreError {
    match extended & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => StoreError::Busy,
        SQLITE_FULL => StoreError::Full,
        SQLITE_CORRUPT | SQLITE_NOTADB => StoreError::Corrupt(message.to_owned()),
        SQLITE_IOERR | SQLITE_CANTOPEN | SQLITE_READONLY => StoreError::Io(message.to_owned()),
        SQLITE_CONSTRAINT => StoreError::Invalid(message.to_owned()),
        _ => StoreError::Other(format!("sqlite error {extended}: {message}")),
    }
}

fn classify_database(err: &dyn DatabaseError) -> StoreError {
    if let Some(sqlite) = err.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        let code = sqlite
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .unwrap_or(0);
        return classify_sqlite(code, sqlite.message());
    }
    // Other backends: fall back to the portable constraint kinds; the
    // backend-specific SQLSTATE mapping is added together with that backend.
    match err.kind() {
        sqlx::error::ErrorKind::Other => StoreError::Other(err.to_string()),
        _ => StoreError::Invalid(err.message().to_owned()),
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            StoreError::Full
        } else {
            StoreError::Io(e.to_string())
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => classify_database(db.as_ref()),
            sqlx::Error::Io(io) => io.into(),
            // All connections are busy for longer than the acquire timeout:
            // same remedy as a locked database.
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_map_to_variants() {
        // Extended codes: SQLITE_BUSY_SNAPSHOT = 517, SQLITE_LOCKED_SHAREDCACHE = 262,
        // SQLITE_IOERR_FSYNC = 1034, SQLITE_CORRUPT_INDEX = 779,
        // SQLITE_CONSTRAINT_CHECK = 275.
        assert!(matches!(classify_sqlite(5, "m"), StoreError::Busy));
        assert!(matches!(classify_sqlite(517, "m"), StoreError::Busy));
        assert!(matches!(classify_sqlite(262, "m"), StoreError::Busy));
        assert!(matches!(classify_sqlite(13, "m"), StoreError::Full));
        assert!(matches!(classify_sqlite(1034, "m"), StoreError::Io(_)));
        assert!(matches!(classify_sqlite(11, "m"), StoreError::Corrupt(_)));
        assert!(matches!(classify_sqlite(779, "m"), StoreError::Corrupt(_)));
        assert!(matches!(classify_sqlite(26, "m"), StoreError::Corrupt(_)));
        assert!(matches!(classify_sqlite(275, "m"), StoreError::Invalid(_)));
        assert!(matches!(classify_sqlite(1, "m"), StoreError::Other(_)));
    }

    #[test]
    fn transient_only_busy_and_full() {
        assert!(StoreError::Busy.is_transient());
        assert!(StoreError::Full.is_transient());
        assert!(!StoreError::Io("x".into()).is_transient());
        assert!(!StoreError::Corrupt("x".into()).is_transient());
        assert!(!StoreError::Invalid("x".into()).is_transient());
        assert!(!StoreError::SchemaTooNew {
            found: 2,
            supported: 1
        }
        .is_transient());
    }

    #[test]
    fn pool_timeout_and_enospc_are_transient() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Busy
        ));
        let enospc = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(matches!(StoreError::from(enospc), StoreError::Full));
    }
}
