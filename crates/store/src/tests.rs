//! Tests that need the store's own connections.

use super::*;
use tempfile::TempDir;

fn binding(aor: &str, contact: String) -> Binding {
    Binding {
        aor: aor.to_owned(),
        contact,
        expires_at: 2000,
        call_id: "cid".to_owned(),
        cseq: u32::MAX,
        q: Some(1.0),
        source: "udp:203.0.113.5:5060".to_owned(),
        local: "udp:0.0.0.0:5060".to_owned(),
        instance: None,
        updated_at: 1000,
    }
}

#[tokio::test]
async fn connection_pragmas_applied() {
    let dir = TempDir::new().unwrap();
    let opts = StoreOptions {
        busy_timeout: Duration::from_millis(1234),
        synchronous: Synchronous::Normal,
        cache_kib: 100,
    };
    let store = Store::open_sqlite(&dir.path().join("db"), opts)
        .await
        .unwrap();
    assert!(store.reader.is_none(), "SQLite reads share the writer");
    let mut w = store.held_writer().await.unwrap();
    let conn = &mut *w.conn;
    let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(timeout, 1234);
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(cache, -100);
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    w.keep();
    store.close().await;

    let store = Store::open_sqlite(&dir.path().join("db"), StoreOptions::default())
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *store.held_writer().await.unwrap().conn)
        .await
        .unwrap();
    assert_eq!(sync, 2, "FULL by default");
    store.close().await;
}

/// SQLITE_FULL provoked with `max_page_count` on the writer connection: the
/// batch fails as a transient `Full`, nothing of it is applied, and writes
/// work again once space is available.
#[tokio::test]
async fn disk_full_is_transient_and_rolls_back() {
    let dir = TempDir::new().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db"), StoreOptions::default())
        .await
        .unwrap();
    let keep = binding("alice", "sip:alice@10.0.0.1".to_owned());
    store.apply(&[RegOp::Upsert(keep.clone())]).await.unwrap();

    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut *store.held_writer().await.unwrap().conn)
        .await
        .unwrap();
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(&mut *store.held_writer().await.unwrap().conn)
        .await
        .unwrap();

    // ~200 KiB of contacts cannot fit in the pages that exist.
    let ops: Vec<RegOp> = (0..200)
        .map(|i| {
            RegOp::Upsert(binding(
                "bob",
                format!("sip:bob-{i}-{}@h", "x".repeat(1000)),
            ))
        })
        .collect();
    let err = store.apply(&ops).await.unwrap_err();
    assert!(matches!(err, StoreError::Full), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(
        store.bindings_load(0).await.unwrap(),
        std::slice::from_ref(&keep)
    );

    sqlx::query("PRAGMA max_page_count = 1073741823")
        .execute(&mut *store.held_writer().await.unwrap().conn)
        .await
        .unwrap();
    store.apply(&ops).await.unwrap();
    assert_eq!(store.bindings_load(0).await.unwrap().len(), 201);
    assert_eq!(
        store.bindings_for("bob", 0).await.unwrap()[0].cseq,
        u32::MAX
    );
    store.close().await;
}

#[test]
fn url_escapes_everything_but_unreserved() {
    let url = sqlite_url(Path::new("/tmp/a b/c#d?e%f/ü.db")).unwrap();
    assert_eq!(url, "sqlite:///tmp/a%20b/c%23d%3Fe%25f/%C3%BC.db?mode=rwc");
}

#[tokio::test]
async fn bans_requests_and_trust_round_trip() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("db");
    let store = Store::open_sqlite(&path, StoreOptions::default())
        .await
        .unwrap();
    let ban = |source: &str, until: Option<i64>| BanRecord {
        source: source.to_owned(),
        rule: "flood".to_owned(),
        evidence: "61 packets at once".to_owned(),
        since: 100,
        until,
        offense: 1,
    };
    let event = |at: i64, source: &str| BanEvent {
        at,
        source: source.to_owned(),
        event: "banned".to_owned(),
        rule: "flood".to_owned(),
        detail: String::new(),
    };
    store
        .bans_write(
            &[
                ban("203.0.113.9", Some(4000)),
                ban("2001:db8:1:2::/64", None),
            ],
            &[],
            &[event(100, "203.0.113.9")],
            100,
        )
        .await
        .unwrap();
    // Replacing and ending in one transaction.
    let mut again = ban("203.0.113.9", Some(9000));
    again.offense = 2;
    store
        .bans_write(
            &[again.clone()],
            &["2001:db8:1:2::/64".to_owned()],
            &[],
            200,
        )
        .await
        .unwrap();
    assert_eq!(store.bans_load().await.unwrap(), vec![again]);
    assert_eq!(
        store
            .ban_events(Some("203.0.113.9"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Old history goes.
    store
        .bans_write(
            &[],
            &[],
            &[event(100 + 91 * 86_400, "x")],
            100 + 91 * 86_400,
        )
        .await
        .unwrap();
    assert_eq!(store.ban_events(None, 10).await.unwrap().len(), 1);

    // The CLI's queue, in order, and the generation the server polls.
    let g0 = store.shield_generation().await.unwrap();
    store
        .ban_request(
            BanAction::Ban,
            "198.51.100.7",
            "seen in logs",
            Some(60),
            300,
        )
        .await
        .unwrap();
    store
        .ban_request(BanAction::Unban, "203.0.113.9", "", None, 301)
        .await
        .unwrap();
    assert_eq!(store.shield_generation().await.unwrap(), g0 + 2);
    let reqs = store.ban_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        (reqs[0].id, reqs[0].action.clone(), reqs[0].secs),
        (1, BanAction::Ban, Some(60))
    );
    assert_eq!(reqs[1].action, BanAction::Unban);
    store.ban_requests_done(reqs[0].id).await.unwrap();
    assert_eq!(store.ban_requests().await.unwrap().len(), 1);

    store
        .trusted_add("192.0.2.0/24", "office", 5)
        .await
        .unwrap();
    store
        .trusted_add("sip.provider.example", "", 6)
        .await
        .unwrap();
    assert_eq!(store.trusted_list().await.unwrap().len(), 2);
    assert!(store.trusted_remove("192.0.2.0/24").await.unwrap());
    assert!(!store.trusted_remove("192.0.2.0/24").await.unwrap());
    assert_eq!(store.shield_generation().await.unwrap(), g0 + 5);
    store.close().await;

    // Everything survives a reopen.
    let store = Store::open_sqlite(&path, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.bans_load().await.unwrap().len(), 1);
    assert_eq!(store.trusted_list().await.unwrap().len(), 1);
    store.close().await;
}
