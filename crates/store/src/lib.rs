//! Persistence for hardline: users (HA1 digests only), registrations, the
//! shield's bans and call records.
//!
//! SQLite is the embedded default. All SQL is portable and runs through
//! `sqlx::Any`; dialect differences live in [`backend`] only, so PostgreSQL
//! can follow on the same code path.
//!
//! Time values are unix seconds supplied by the caller, which keeps the store
//! deterministic and testable.

mod backend;
mod error;
mod model;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};

use backend::Backend;
pub use cdr::CdrRecord;
pub use error::StoreError;
pub use model::{Binding, RegOp, UserRecord};
pub use shield::{BanAction, BanEvent, BanRecord, BanRequest, TrustedRecord};

/// SQLite `synchronous` level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the WAL on every commit: an acknowledged write survives power
    /// loss. Group commit (`Store::apply`) amortises the cost, so this is
    /// the default: a REGISTER answered 200 must not silently vanish.
    #[default]
    Full,
    /// fsync only at checkpoints: survives process crashes, but the last
    /// commits may be lost on power loss / kernel crash (never corrupts).
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Tuning for [`Store::open_sqlite`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a write waits for another writer's lock before
    /// [`StoreError::Busy`]. Also bounds waiting for a pooled connection
    /// (plus one second).
    pub busy_timeout: Duration,
    /// Durability level, see [`Synchronous`].
    pub synchronous: Synchronous,
    /// Page cache limit per connection, in KiB.
    pub cache_kib: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(2),
            synchronous: Synchronous::Full,
            cache_kib: 256,
        }
    }
}

/// Handle to the database. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Every write goes through here (SQLite: exactly one connection).
    writer: AnyPool,
    /// The writer connection, kept between writes: each return to the pool
    /// pings it, one more round trip to SQLite's worker thread per commit.
    /// Writers queue on this lock (FIFO); a write that fails gives the
    /// connection back to the pool, which tests it or opens a new one.
    held: Arc<tokio::sync::Mutex<Option<PoolConnection<Any>>>>,
    /// Reads, where the backend gains from a connection of their own
    /// (PostgreSQL). SQLite reads share the writer connection: its reads
    /// take microseconds, and a second connection (page cache, schema,
    /// statement cache, a thread) would be a tenth of the idle memory.
    reader: Option<AnyPool>,
}

/// Runs a read query (`$q.$fetch(executor)`) on the reader pool, or on the
/// held writer connection where there is none.
macro_rules! read {
    ($store:expr, $q:expr, $fetch:ident) => {{
        match &$store.reader {
            Some(pool) => Ok($q.$fetch(pool).await?),
            None => {
                let mut w = $store.held_writer().await?;
                let r = $q.$fetch(&mut *w.conn).await?;
                w.keep();
                Ok(r)
            }
        }
    }};
}

mod cdr;
mod shield;

/// A write transaction on the held writer connection.
type Tx<'c> = Transaction<'c, Any>;

/// Exclusive use of the writer connection. [`HeldWriter::keep`] puts it
/// back for the next write; dropped without that (an error, a cancelled
/// future), the connection goes back to the pool instead.
struct HeldWriter<'a> {
    slot: tokio::sync::MutexGuard<'a, Option<PoolConnection<Any>>>,
    conn: PoolConnection<Any>,
}

impl HeldWriter<'_> {
    async fn begin(&mut self, backend: Backend) -> Result<Tx<'_>, StoreError> {
        Ok(self.conn.begin_with(backend.begin_write()).await?)
    }

    fn keep(self) {
        let HeldWriter { mut slot, conn } = self;
        *slot = Some(conn);
    }
}

impl Store {
    /// Open (creating file and parent directories if missing) a SQLite
    /// database, switch it to WAL and bring its schema up to date.
    pub async fn open_sqlite(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = prepare_sqlite_path(path)?;
        let url = sqlite_url(&path)?;
        Self::open_any(Backend::Sqlite, &url, opts).await
    }

    /// Open by URL: `sqlite://PATH` or `sqlite:PATH` (PATH taken literally,
    /// no query parameters). PostgreSQL URLs are recognised but not enabled
    /// in this build yet.
    pub async fn open_url(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.contains('?') {
                return Err(StoreError::Unsupported(format!(
                    "sqlite URL must be sqlite://PATH without parameters: {url}"
                )));
            }
            return Self::open_sqlite(Path::new(path), opts).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(StoreError::Unsupported(
                "PostgreSQL backend is not enabled yet; use sqlite://PATH".to_owned(),
            ));
        }
        Err(StoreError::Unsupported(format!(
            "unknown database URL scheme: {url}"
        )))
    }

    async fn open_any(
        backend: Backend,
        url: &str,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let connect: AnyConnectOptions = url.parse()?;
        let setup: Arc<[String]> = backend.connection_setup(&opts).into();
        let (writers, readers) = backend.pool_sizes();

        // Set up and migrate on a dedicated connection first: the pool
        // retries failing `after_connect` hooks until its acquire timeout, which
        // would turn "not a database" into a misleading timeout.
        let mut conn = AnyConnection::connect_with(&connect).await?;
        let prepared = prepare_database(backend, &mut conn, &setup).await;
        // Close even on failure so the file is not held open.
        let closed = conn.close().await;
        prepared?;
        closed?;

        let writer = pool_options(backend, writers, &opts, setup.clone())
            .connect_with(connect.clone())
            .await?;
        let reader = if readers == 0 {
            None
        } else {
            match pool_options(backend, readers, &opts, setup)
                .connect_with(connect)
                .await
            {
                Ok(p) => Some(p),
                Err(e) => {
                    writer.close().await;
                    return Err(e.into());
                }
            }
        };
        Ok(Store {
            backend,
            writer,
            held: Arc::new(tokio::sync::Mutex::new(None)),
            reader,
        })
    }

    /// Close all connections, waiting for in-flight operations.
    pub async fn close(self) {
        // The pool waits for every connection to come back, the held one too.
        drop(self.held.lock().await.take());
        if let Some(r) = &self.reader {
            r.close().await;
        }
        self.writer.close().await;
    }

    async fn held_writer(&self) -> Result<HeldWriter<'_>, StoreError> {
        let mut slot = self.held.lock().await;
        let conn = match slot.take() {
            Some(c) => c,
            None => self.writer.acquire().await?,
        };
        Ok(HeldWriter { slot, conn })
    }

    // ---------------------------------------------------------------- users

    /// Insert or replace a user. On replace, `created_at` keeps its original
    /// value. Bumps [`Store::users_generation`].
    pub async fn user_upsert(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.users_upsert(std::slice::from_ref(user)).await
    }

    /// [`Store::user_upsert`] for many users in one transaction (one fsync:
    /// a config with thousands of extensions starts in a moment).
    pub async fn users_upsert(&self, users: &[UserRecord]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        for user in users {
            sqlx::query(&b.sql(sql::USER_UPSERT))
                .bind(user.username.as_str())
                .bind(user.ha1_md5.as_str())
                .bind(user.ha1_sha256.as_str())
                .bind(user.display_name.as_deref())
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
        }
        self.bump_users_generation(&mut tx).await?;
        tx.commit().await?;
        w.keep();
        Ok(())
    }

    /// The user named `username`, if any.
    pub async fn user_get(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let b = self.backend;
        let text = b.sql(sql::USER_GET);
        let q = sqlx::query(&text)
            .bind(username)
            .try_map(|row: AnyRow| user_from_row(&row));
        read!(self, q, fetch_optional)
    }

    /// Remove a user and all its bindings. Returns whether the user existed.
    pub async fn user_remove(&self, username: &str) -> Result<bool, StoreError> {
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        sqlx::query(&b.sql(sql::BINDING_DELETE_AOR))
            .bind(username)
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query(&b.sql(sql::USER_DELETE))
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            self.bump_users_generation(&mut tx).await?;
        }
        tx.commit().await?;
        w.keep();
        Ok(removed)
    }

    /// All users, ordered by username.
    pub async fn users_list(&self) -> Result<Vec<UserRecord>, StoreError> {
        let b = self.backend;
        let text = b.sql(sql::USER_LIST);
        let q = sqlx::query(&text).try_map(|row: AnyRow| user_from_row(&row));
        read!(self, q, fetch_all)
    }

    /// Counter bumped in the same transaction as every user change; poll it
    /// to notice edits made by another process (the CLI).
    pub async fn users_generation(&self) -> Result<i64, StoreError> {
        self.generation(sql::USERS_GENERATION_KEY).await
    }

    async fn generation(&self, key: &str) -> Result<i64, StoreError> {
        let value = self
            .meta_get(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("counter {key} missing")))?;
        value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("counter {key} is {value:?}")))
    }

    async fn bump_users_generation(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        self.bump_generation(tx, sql::USERS_GENERATION_KEY).await
    }

    async fn bump_generation(&self, tx: &mut Tx<'_>, key: &str) -> Result<(), StoreError> {
        let updated = sqlx::query(&self.backend.sql(sql::USERS_GENERATION_BUMP))
            .bind(key)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if updated != 1 {
            return Err(StoreError::Corrupt(format!("counter {key} missing")));
        }
        Ok(())
    }

    // ----------------------------------------------------------------- meta

    /// Value of a meta key (e.g. the server's persisted nonce secret).
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let text = self.backend.sql(sql::META_GET);
        let q = sqlx::query_scalar(&text).bind(key);
        read!(self, q, fetch_optional)
    }

    /// Set a key. Keys starting with `store.` are reserved for the store.
    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if key.starts_with(sql::META_RESERVED_PREFIX) {
            return Err(StoreError::Invalid(format!("meta key {key:?} is reserved")));
        }
        let mut w = self.held_writer().await?;
        sqlx::query(&self.backend.sql(sql::META_SET))
            .bind(key)
            .bind(value)
            .execute(&mut *w.conn)
            .await?;
        w.keep();
        Ok(())
    }

    // --------------------------------------------------------- registrations

    /// Apply a batch of binding changes atomically, in one transaction (group
    /// commit): either every op is applied or none is.
    pub async fn apply(&self, ops: &[RegOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let b = self.backend;
        let steps = plan_steps(ops);
        let mut w = self.held_writer().await?;
        if let [only] = steps.as_slice() {
            // One statement is atomic by itself: no BEGIN and COMMIT round
            // trips, which at low rates are most of a registration's cost.
            run_step(b, &mut w.conn, only).await?;
        } else {
            // An error returns early; dropping `tx` rolls the batch back.
            let mut tx = w.begin(b).await?;
            for step in &steps {
                run_step(b, &mut tx, step).await?;
            }
            tx.commit().await?;
        }
        w.keep();
        Ok(())
    }

    /// All bindings with `expires_at > now`, ordered by (aor, contact).
    pub async fn bindings_load(&self, now: i64) -> Result<Vec<Binding>, StoreError> {
        let text = self.backend.sql(sql::BINDING_LOAD);
        let q = sqlx::query(&text)
            .bind(now)
            .try_map(|row: AnyRow| binding_from_row(&row));
        read!(self, q, fetch_all)
    }

    /// Bindings of one AoR with `expires_at > now`, ordered by contact.
    pub async fn bindings_for(&self, aor: &str, now: i64) -> Result<Vec<Binding>, StoreError> {
        let text = self.backend.sql(sql::BINDING_FOR);
        let q = sqlx::query(&text)
            .bind(aor)
            .bind(now)
            .try_map(|row: AnyRow| binding_from_row(&row));
        read!(self, q, fetch_all)
    }

    /// Delete bindings with `expires_at <= now`; returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        // One statement: atomic on its own, no explicit transaction needed.
        let mut w = self.held_writer().await?;
        let n = sqlx::query(&self.backend.sql(sql::BINDING_PURGE))
            .bind(now)
            .execute(&mut *w.conn)
            .await?
            .rows_affected();
        w.keep();
        Ok(n)
    }
}

/// One statement of a [`Store::apply`] batch.
enum Step<'a> {
    Upsert(Vec<&'a Binding>),
    Remove { aor: &'a str, contact: &'a str },
    RemoveAll { aor: &'a str },
}

/// The statements for `ops`, in order. A run of upserts goes out as
/// multi-row statements. One statement may not touch a row twice (PostgreSQL
/// refuses it), so within a run the last upsert of a contact wins, which is
/// the state the sequence would leave anyway.
fn plan_steps(ops: &[RegOp]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        match &ops[i] {
            RegOp::Upsert(_) => {
                let run_end = ops[i..]
                    .iter()
                    .position(|o| !matches!(o, RegOp::Upsert(_)))
                    .map_or(ops.len(), |n| i + n);
                let mut rows: Vec<&Binding> = Vec::with_capacity(run_end - i);
                let mut at: std::collections::HashMap<(&str, &str), usize> =
                    std::collections::HashMap::with_capacity(run_end - i);
                for op in &ops[i..run_end] {
                    let RegOp::Upsert(bind) = op else { continue };
                    match at.entry((bind.aor.as_str(), bind.contact.as_str())) {
                        std::collections::hash_map::Entry::Occupied(e) => rows[*e.get()] = bind,
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(rows.len());
                            rows.push(bind);
                        }
                    }
                }
                steps.extend(
                    rows.chunks(sql::UPSERT_CHUNK)
                        .map(|c| Step::Upsert(c.to_vec())),
                );
                i = run_end;
            }
            RegOp::Remove { aor, contact } => {
                steps.push(Step::Remove { aor, contact });
                i += 1;
            }
            RegOp::RemoveAll { aor } => {
                steps.push(Step::RemoveAll { aor });
                i += 1;
            }
        }
    }
    steps
}

async fn run_step(b: Backend, conn: &mut AnyConnection, step: &Step<'_>) -> Result<(), StoreError> {
    match step {
        Step::Upsert(rows) => {
            let text = sql::binding_upsert_rows(rows.len());
            let text = b.sql(&text);
            let mut q = sqlx::query(&text);
            for bind in rows {
                q = q
                    .bind(bind.aor.as_str())
                    .bind(bind.contact.as_str())
                    .bind(bind.expires_at)
                    .bind(bind.call_id.as_str())
                    .bind(i64::from(bind.cseq))
                    .bind(bind.q_milli()?)
                    .bind(bind.source.as_str())
                    .bind(bind.local.as_str())
                    .bind(bind.instance.as_deref())
                    .bind(bind.updated_at);
            }
            q.execute(conn).await?;
        }
        Step::Remove { aor, contact } => {
            sqlx::query(&b.sql(sql::BINDING_DELETE))
                .bind(*aor)
                .bind(*contact)
                .execute(conn)
                .await?;
        }
        Step::RemoveAll { aor } => {
            sqlx::query(&b.sql(sql::BINDING_DELETE_AOR))
                .bind(*aor)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

fn pool_options(
    backend: Backend,
    max: u32,
    opts: &StoreOptions,
    setup: Arc<[String]>,
) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        // Keep connections for the process lifetime: reopening costs more
        // than the few KiB an idle SQLite connection holds.
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(opts.busy_timeout + Duration::from_secs(1))
        .test_before_acquire(backend.test_before_acquire())
        .after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                for stmt in setup.iter() {
                    conn.execute(stmt.as_str()).await?;
                }
                Ok(())
            })
        })
        // SQLite rolls a transaction back by itself on some errors (e.g.
        // SQLITE_FULL, SQLITE_IOERR); sqlx's own ROLLBACK then fails and its
        // transaction counter stays non-zero, which would make every later
        // `begin` on this connection fail. Drop such a connection instead.
        // The ping first flushes the rollback queued by a dropped transaction.
        .after_release(|conn, _meta| {
            Box::pin(async move {
                conn.ping().await?;
                let healthy = !conn.is_in_transaction();
                if !healthy {
                    tracing::warn!("dropping store connection left inside a failed transaction");
                }
                Ok(healthy)
            })
        })
}

/// Create the parent directory and return an absolute, symlink-free path so
/// the URL round trip cannot reinterpret `..` segments.
fn prepare_sqlite_path(path: &Path) -> Result<PathBuf, StoreError> {
    let file_name = path.file_name().ok_or_else(|| {
        StoreError::Unsupported(format!("not a database file path: {}", path.display()))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)?;
    Ok(std::fs::canonicalize(parent)?.join(file_name))
}

/// `sqlite://` URL for `path`, created if missing. sqlx percent-decodes the
/// path, so everything outside the unreserved set is escaped.
fn sqlite_url(path: &Path) -> Result<String, StoreError> {
    let s = path.to_str().ok_or_else(|| {
        StoreError::Unsupported(format!("non UTF-8 database path: {}", path.display()))
    })?;
    let mut url = String::with_capacity(s.len() + 24);
    url.push_str("sqlite://");
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        username: row.try_get(0)?,
        ha1_md5: row.try_get(1)?,
        ha1_sha256: row.try_get(2)?,
        display_name: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

fn binding_from_row(row: &AnyRow) -> Result<Binding, sqlx::Error> {
    let cseq: i64 = row.try_get(4)?;
    let q_milli: Option<i64> = row.try_get(5)?;
    Ok(Binding {
        aor: row.try_get(0)?,
        contact: row.try_get(1)?,
        expires_at: row.try_get(2)?,
        call_id: row.try_get(3)?,
        cseq: u32::try_from(cseq).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        q: q_milli.map(model::q_from_milli),
        source: row.try_get(6)?,
        local: row.try_get(7)?,
        instance: row.try_get(8)?,
        updated_at: row.try_get(9)?,
    })
}

/// Connection setup, database-level setup (WAL) and schema migrations.
async fn prepare_database(
    backend: Backend,
    conn: &mut AnyConnection,
    setup: &[String],
) -> Result<(), StoreError> {
    for stmt in setup {
        conn.execute(stmt.as_str()).await?;
    }
    for stmt in backend.database_setup() {
        let row = sqlx::query(stmt)
            .persistent(false)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            let value: Option<String> = row.try_get(0).ok();
            tracing::debug!(%stmt, ?value, "database setup");
            if backend == Backend::Sqlite && value.as_deref() != Some("wal") {
                // e.g. a filesystem without shared memory support: still
                // correct, just readers and writer block each other.
                tracing::warn!(?value, "SQLite WAL journal mode not available");
            }
        }
    }
    migrate(backend, conn).await
}

/// Schema migrations in one write transaction: a crash half-way leaves the
/// previous version intact, and two processes opening at once serialise.
async fn migrate(backend: Backend, conn: &mut AnyConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    sqlx::query(&backend.sql(sql::SCHEMA_VERSION_CREATE))
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    let found: Option<i64> = sqlx::query_scalar(&backend.sql(sql::SCHEMA_VERSION_GET))
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    let found = found.unwrap_or(0);
    if found > sql::SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: sql::SCHEMA_VERSION,
        });
    }
    let start = usize::try_from(found)
        .map_err(|_| StoreError::Corrupt(format!("negative schema version {found}")))?;
    if start == sql::MIGRATIONS.len() {
        tx.commit().await?;
        return Ok(());
    }
    for (idx, migration) in sql::MIGRATIONS.iter().enumerate().skip(start) {
        for stmt in migration.iter() {
            sqlx::query(&backend.sql(stmt))
                .persistent(false)
                .execute(&mut *tx)
                .await?;
        }
        tracing::info!(version = idx + 1, "applied store schema migration");
    }
    sqlx::query(&backend.sql(sql::SCHEMA_VERSION_CLEAR))
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&backend.sql(sql::SCHEMA_VERSION_SET))
        .persistent(false)
        .bind(sql::SCHEMA_VERSION)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
