//! Public-API tests against real SQLite files in temp dirs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};
use store::{Binding, RegOp, Store, StoreError, StoreOptions, UserRecord};
use tempfile::TempDir;

fn opts() -> StoreOptions {
    StoreOptions {
        busy_timeout: Duration::from_millis(200),
        ..StoreOptions::default()
    }
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("hardline.db")
}

async fn open(path: &Path) -> Store {
    Store::open_sqlite(path, opts()).await.expect("open store")
}

/// A second, independent connection, as another process (the CLI) would have.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connect")
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        username: name.to_owned(),
        ha1_md5: format!("md5-{name}"),
        ha1_sha256: format!("sha256-{name}"),
        display_name: Some(format!("User {name}")),
        created_at: 1_700_000_000,
    }
}

fn binding(aor: &str, contact: &str, expires_at: i64) -> Binding {
    Binding {
        aor: aor.to_owned(),
        contact: contact.to_owned(),
        expires_at,
        call_id: format!("cid-{aor}-{contact}"),
        cseq: 7,
        q: Some(0.7),
        source: "udp:203.0.113.5:5060".to_owned(),
        local: "udp:0.0.0.0:5060".to_owned(),
        instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".to_owned()),
        updated_at: expires_at - 3600,
    }
}

#[tokio::test]
async fn creates_parent_dirs_and_uses_wal() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a/b c/d#?/hardline.db");
    let store = open(&path).await;
    store.close().await;
    assert!(path.is_file(), "database file created at the literal path");
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 3);
}

#[tokio::test]
async fn users_crud_and_generation() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    assert_eq!(store.users_generation().await.unwrap(), 0);
    assert_eq!(store.user_get("alice").await.unwrap(), None);

    store.user_upsert(&user("bob")).await.unwrap();
    store.user_upsert(&user("alice")).await.unwrap();
    assert_eq!(store.users_generation().await.unwrap(), 2);
    assert_eq!(store.user_get("alice").await.unwrap(), Some(user("alice")));

    // Update: digests and display name change, created_at is kept.
    let mut edited = user("alice");
    edited.ha1_md5 = "new-md5".into();
    edited.display_name = None;
    edited.created_at = 42;
    store.user_upsert(&edited).await.unwrap();
    assert_eq!(store.users_generation().await.unwrap(), 3);
    let got = store.user_get("alice").await.unwrap().unwrap();
    assert_eq!(got.ha1_md5, "new-md5");
    assert_eq!(got.display_name, None);
    assert_eq!(got.created_at, 1_700_000_000);

    let names: Vec<String> = store
        .users_list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    assert!(store.user_remove("bob").await.unwrap());
    assert_eq!(store.users_generation().await.unwrap(), 4);
    // Removing nothing is not a change.
    assert!(!store.user_remove("bob").await.unwrap());
    assert_eq!(store.users_generation().await.unwrap(), 4);
    assert_eq!(store.user_get("bob").await.unwrap(), None);
    assert_eq!(store.users_list().await.unwrap().len(), 1);

    let err = store.user_upsert(&user("")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(store.users_generation().await.unwrap(), 4);
    store.close().await;
}

#[tokio::test]
async fn generation_change_visible_to_other_process() {
    let dir = TempDir::new().unwrap();
    let server = open(&db_path(&dir)).await;
    let cli = open(&db_path(&dir)).await;
    let before = server.users_generation().await.unwrap();
    cli.user_upsert(&user("carol")).await.unwrap();
    cli.close().await;
    assert_eq!(server.users_generation().await.unwrap(), before + 1);
    assert!(server.user_get("carol").await.unwrap().is_some());
    server.close().await;
}

#[tokio::test]
async fn user_remove_removes_only_its_bindings() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    store.user_upsert(&user("alice")).await.unwrap();
    store.user_upsert(&user("bob")).await.unwrap();
    store
        .apply(&[
            RegOp::Upsert(binding("alice", "sip:alice@10.0.0.1", 2000)),
            RegOp::Upsert(binding("alice", "sip:alice@10.0.0.2", 2000)),
            RegOp::Upsert(binding("bob", "sip:bob@10.0.0.3", 2000)),
        ])
        .await
        .unwrap();
    assert!(store.user_remove("alice").await.unwrap());
    assert!(store.bindings_for("alice", 0).await.unwrap().is_empty());
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        [binding("bob", "sip:bob@10.0.0.3", 2000)]
    );
    store.close().await;
}

#[tokio::test]
async fn bindings_batch_upsert_remove_remove_all() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    let a1 = binding("alice", "sip:alice@10.0.0.1", 2000);
    let a2 = binding("alice", "sip:alice@10.0.0.2;transport=tcp", 2000);
    let b1 = binding("bob", "sip:bob@10.0.0.3", 2000);
    store
        .apply(&[
            RegOp::Upsert(a1.clone()),
            RegOp::Upsert(a2.clone()),
            RegOp::Upsert(b1.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        [a1.clone(), a2.clone(), b1.clone()]
    );

    // Refresh replaces the row for the same (aor, contact).
    let mut a1b = a1.clone();
    a1b.expires_at = 5000;
    a1b.cseq = 8;
    a1b.q = None;
    a1b.instance = None;
    a1b.source = "tcp:198.51.100.9:40000".into();
    store.apply(&[RegOp::Upsert(a1b.clone())]).await.unwrap();
    assert_eq!(
        store.bindings_for("alice", 0).await.unwrap(),
        [a1b.clone(), a2.clone()]
    );

    store
        .apply(&[
            RegOp::Remove {
                aor: "alice".into(),
                contact: a2.contact.clone(),
            },
            // Removing an absent binding is fine.
            RegOp::Remove {
                aor: "alice".into(),
                contact: "sip:nobody@x".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.bindings_for("alice", 0).await.unwrap(), [a1b]);

    store
        .apply(&[RegOp::RemoveAll {
            aor: "alice".into(),
        }])
        .await
        .unwrap();
    assert!(store.bindings_for("alice", 0).await.unwrap().is_empty());
    assert_eq!(store.bindings_load(0).await.unwrap(), [b1]);
    store.apply(&[]).await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn failing_batch_applies_nothing() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    let keep = binding("alice", "sip:alice@10.0.0.1", 2000);
    store.apply(&[RegOp::Upsert(keep.clone())]).await.unwrap();

    // Valid ops first, then one the database rejects (CHECK contact <> '').
    let err = store
        .apply(&[
            RegOp::Upsert(binding("bob", "sip:bob@10.0.0.3", 2000)),
            RegOp::Remove {
                aor: "alice".into(),
                contact: keep.contact.clone(),
            },
            RegOp::Upsert(binding("carol", "", 2000)),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        std::slice::from_ref(&keep)
    );

    // Same with an error raised on our side (q out of range) mid-batch.
    let mut bad_q = binding("dave", "sip:dave@10.0.0.4", 2000);
    bad_q.q = Some(1.5);
    let err = store
        .apply(&[
            RegOp::RemoveAll {
                aor: "alice".into(),
            },
            RegOp::Upsert(bad_q),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        std::slice::from_ref(&keep)
    );

    // The writer connection is usable again after the rollbacks.
    store
        .apply(&[RegOp::Upsert(binding("bob", "sip:bob@10.0.0.3", 2000))])
        .await
        .unwrap();
    assert_eq!(store.bindings_load(0).await.unwrap().len(), 2);
    store.close().await;
}

#[tokio::test]
async fn expiry_filter_and_purge() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    store
        .apply(&[
            RegOp::Upsert(binding("alice", "sip:a1@h", 100)),
            RegOp::Upsert(binding("alice", "sip:a2@h", 200)),
            RegOp::Upsert(binding("alice", "sip:a3@h", 300)),
        ])
        .await
        .unwrap();
    // expires_at == now counts as expired.
    let live: Vec<i64> = store
        .bindings_load(200)
        .await
        .unwrap()
        .iter()
        .map(|b| b.expires_at)
        .collect();
    assert_eq!(live, [300]);
    assert_eq!(store.bindings_for("alice", 150).await.unwrap().len(), 2);
    // Not yet purged: still present for an earlier `now`.
    assert_eq!(store.bindings_load(0).await.unwrap().len(), 3);

    assert_eq!(store.purge_expired(200).await.unwrap(), 2);
    assert_eq!(store.bindings_load(0).await.unwrap().len(), 1);
    assert_eq!(store.purge_expired(200).await.unwrap(), 0);
    store.close().await;
}

#[tokio::test]
async fn meta_get_set() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    assert_eq!(store.meta_get("nonce_secret").await.unwrap(), None);
    store.meta_set("nonce_secret", "abc").await.unwrap();
    store.meta_set("nonce_secret", "def").await.unwrap();
    assert_eq!(
        store.meta_get("nonce_secret").await.unwrap().as_deref(),
        Some("def")
    );
    let err = store
        .meta_set("store.users_generation", "0")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    store.close().await;
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.user_upsert(&user("alice")).await.unwrap();
    store.meta_set("nonce_secret", "s3cr3t").await.unwrap();
    let b = binding("alice", "sip:alice@10.0.0.1", 2000);
    store.apply(&[RegOp::Upsert(b.clone())]).await.unwrap();
    let generation = store.users_generation().await.unwrap();
    store.close().await;

    let store = open(&path).await;
    assert_eq!(store.user_get("alice").await.unwrap(), Some(user("alice")));
    assert_eq!(store.users_generation().await.unwrap(), generation);
    assert_eq!(
        store.meta_get("nonce_secret").await.unwrap().as_deref(),
        Some("s3cr3t")
    );
    assert_eq!(store.bindings_load(0).await.unwrap(), [b]);
    store.close().await;
}

#[tokio::test]
async fn refuses_newer_schema() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    open(&path).await.close().await;
    {
        let mut conn = raw(&path).await;
        conn.execute("UPDATE schema_version SET version = 99")
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let err = Store::open_sqlite(&path, opts()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 3
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("99"));
    // Nothing was touched.
    let mut conn = raw(&path).await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 99);
}

#[tokio::test]
async fn not_a_database_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = Store::open_sqlite(&path, opts()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn locked_database_is_busy_and_data_intact() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store.user_upsert(&user("alice")).await.unwrap();
    let keep = binding("alice", "sip:alice@10.0.0.1", 2000);
    store.apply(&[RegOp::Upsert(keep.clone())]).await.unwrap();

    let mut locker = raw(&path).await;
    locker.execute("BEGIN EXCLUSIVE").await.unwrap();

    let started = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        store.apply(&[
            RegOp::RemoveAll {
                aor: "alice".into(),
            },
            RegOp::Upsert(binding("alice", "sip:alice@10.0.0.9", 3000)),
        ]),
    )
    .await
    .expect("apply must give up on its own, bounded by busy_timeout");
    let waited = started.elapsed();
    let err = res.unwrap_err();
    assert!(matches!(err, StoreError::Busy), "{err:?}");
    assert!(err.is_transient());
    // It did wait for the lock (busy_timeout = 200 ms), but not much longer.
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Other writes give up the same way.
    let err = store.user_upsert(&user("bob")).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy), "{err:?}");
    // WAL: readers are not blocked by the writer lock.
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        std::slice::from_ref(&keep)
    );

    locker.execute("ROLLBACK").await.unwrap();
    locker.close().await.unwrap();

    assert_eq!(store.bindings_load(0).await.unwrap(), [keep]);
    assert_eq!(store.user_get("bob").await.unwrap(), None);
    // Once the lock is gone the same batch goes through.
    store
        .apply(&[
            RegOp::RemoveAll {
                aor: "alice".into(),
            },
            RegOp::Upsert(binding("alice", "sip:alice@10.0.0.9", 3000)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        [binding("alice", "sip:alice@10.0.0.9", 3000)]
    );
    store.close().await;
}

#[tokio::test]
async fn open_url_schemes() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let url = format!("sqlite://{}", path.display());
    let store = Store::open_url(&url, opts()).await.unwrap();
    store.meta_set("k", "v").await.unwrap();
    store.close().await;
    let store = open(&path).await;
    assert_eq!(store.meta_get("k").await.unwrap().as_deref(), Some("v"));
    store.close().await;

    for url in [
        "postgres://u@localhost/db",
        "mysql://x",
        "sqlite://x.db?mode=ro",
    ] {
        let err = Store::open_url(url, opts()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unsupported(_)), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn large_batches_with_repeated_contacts_keep_operation_order() {
    let dir = TempDir::new().unwrap();
    let s = open(&db_path(&dir)).await;
    let far = 4_000_000_000;
    let mut ops = Vec::new();
    // More rows than one multi-row statement holds, each contact twice in
    // the same run (the later one must win), then a removal and a re-add.
    for round in 0..2 {
        for i in 0..150 {
            let mut b = binding("1000", &format!("sip:c{i}@h"), far + round);
            b.cseq = 10 + round as u32;
            ops.push(RegOp::Upsert(b));
        }
    }
    ops.push(RegOp::Remove {
        aor: "1000".into(),
        contact: "sip:c0@h".into(),
    });
    ops.push(RegOp::Upsert(binding("2000", "sip:x@h", far)));
    ops.push(RegOp::RemoveAll { aor: "2000".into() });
    ops.push(RegOp::Upsert(binding("2000", "sip:y@h", far)));
    s.apply(&ops).await.unwrap();

    let got = s.bindings_for("1000", 0).await.unwrap();
    assert_eq!(got.len(), 149);
    assert!(got.iter().all(|b| b.cseq == 11 && b.expires_at == far + 1));
    assert!(!got.iter().any(|b| b.contact == "sip:c0@h"));
    let other = s.bindings_for("2000", 0).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].contact, "sip:y@h");
}
