//! The only place that knows which SQL dialect is behind the pool.
//!
//! Everything else writes portable SQL with `?` placeholders and
//! `INSERT .. ON CONFLICT (..) DO UPDATE SET .. = excluded..` upserts (both
//! SQLite >= 3.24 and PostgreSQL >= 9.5 accept that form), and runs through
//! `sqlx::Any`, so adding PostgreSQL means filling in the arms below.

use std::borrow::Cow;

use crate::StoreOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    #[cfg_attr(not(test), allow(dead_code))]
    Postgres,
}

impl Backend {
    /// Rewrite `?` placeholders into the backend's syntax. Our SQL never has a
    /// `?` inside a string literal, so a plain scan is enough.
    pub(crate) fn sql(self, portable: &str) -> Cow<'_, str> {
        match self {
            Backend::Sqlite => Cow::Borrowed(portable),
            Backend::Postgres => {
                let mut out = String::with_capacity(portable.len() + 16);
                let mut n = 0;
                for ch in portable.chars() {
                    if ch == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(ch);
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// Statement that opens a write transaction. SQLite must take the write
    /// lock up front: a deferred transaction that upgrades later can fail with
    /// SQLITE_BUSY_SNAPSHOT without ever consulting the busy handler.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Per-connection setup run right after connecting.
    pub(crate) fn connection_setup(self, opts: &StoreOptions) -> Vec<String> {
        match self {
            Backend::Sqlite => vec![
                format!("PRAGMA busy_timeout = {}", opts.busy_timeout.as_millis()),
                format!("PRAGMA synchronous = {}", opts.synchronous.pragma_value()),
                "PRAGMA foreign_keys = ON".to_owned(),
                // Negative = KiB. Bounded page cache per connection keeps RSS
                // small (SQLite's default is 2 MiB per connection).
                format!("PRAGMA cache_size = -{}", opts.cache_kib),
                // Temp b-trees (sorts) in memory are tiny for our tables and
                // avoid temp files in odd places.
                "PRAGMA temp_store = MEMORY".to_owned(),
            ],
            Backend::Postgres => Vec::new(),
        }
    }

    /// One-time database-level setup done before migrations.
    pub(crate) fn database_setup(self) -> &'static [&'static str] {
        match self {
            // WAL is persistent in the file; readers then never block the
            // writer and vice versa.
            Backend::Sqlite => &["PRAGMA journal_mode = WAL"],
            Backend::Postgres => &[],
        }
    }

    /// Pool sizing: (writer connections, reader connections; 0: reads share
    /// the writer connection).
    pub(crate) fn pool_sizes(self) -> (u32, u32) {
        match self {
            // SQLite allows one writer at a time anyway; a single writer
            // connection makes in-process writers queue (async, FIFO)
            // instead of spinning in SQLite's busy handler. Reads are few
            // and short (start-up, the CLI, a poll every 2 s).
            Backend::Sqlite => (1, 0),
            Backend::Postgres => (2, 2),
        }
    }

    /// Pinging an embedded database on every acquire is pure overhead;
    /// a network connection may have gone stale.
    pub(crate) fn test_before_acquire(self) -> bool {
        matches!(self, Backend::Postgres)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_rewritten_for_postgres_only() {
        let q = "UPDATE t SET a = ?, b = ? WHERE c = ?";
        assert_eq!(Backend::Sqlite.sql(q), q);
        assert_eq!(
            Backend::Postgres.sql(q),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
    }

    #[test]
    fn no_literal_question_marks_in_store_sql() {
        // The placeholder rewrite relies on this.
        let migrations = crate::sql::MIGRATIONS.iter().flat_map(|m| m.iter());
        for sql in crate::sql::ALL.iter().chain(migrations) {
            let mut in_literal = false;
            for ch in sql.chars() {
                match ch {
                    '\'' => in_literal = !in_literal,
                    '?' => assert!(!in_literal, "literal '?' in {sql}"),
                    _ => {}
                }
            }
        }
    }
}
