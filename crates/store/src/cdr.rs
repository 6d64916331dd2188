//! Call records: one per call, written when the call ends, kept up to a
//! configured number (the oldest go first).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{sql, Store, StoreError};

/// One call. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrRecord {
    pub call_id: String,
    /// The caller's and callee's addresses of record (From and To URIs).
    pub caller: String,
    pub callee: String,
    /// Where the caller's signalling came from, and the callee's contact.
    pub caller_source: String,
    pub callee_target: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    /// `answered`, `busy`, `no_answer`, `cancelled`, `failed`,
    /// `media_timeout`.
    pub disposition: String,
    /// The final status of a call that failed.
    pub status: Option<i64>,
    pub codec: Option<String>,
    /// The worst direction's MOS × 1000, when one was rated.
    pub mos_milli: Option<i64>,
    /// Per-stream statistics, a JSON array.
    pub streams: String,
}

fn cdr_from_row(row: &AnyRow) -> Result<CdrRecord, sqlx::Error> {
    Ok(CdrRecord {
        call_id: row.try_get(0)?,
        caller: row.try_get(1)?,
        callee: row.try_get(2)?,
        caller_source: row.try_get(3)?,
        callee_target: row.try_get(4)?,
        started_at: row.try_get(5)?,
        answered_at: row.try_get(6)?,
        ended_at: row.try_get(7)?,
        disposition: row.try_get(8)?,
        status: row.try_get(9)?,
        codec: row.try_get(10)?,
        mos_milli: row.try_get(11)?,
        streams: row.try_get(12)?,
    })
}

impl Store {
    /// Stores `cdrs` in one transaction (64 rows per statement), then,
    /// when `keep` is given, drops all but the newest `keep` (a walk of the
    /// index: callers do it now and then, not per batch).
    pub async fn cdrs_write(
        &self,
        cdrs: &[CdrRecord],
        keep: Option<i64>,
    ) -> Result<(), StoreError> {
        if cdrs.is_empty() && keep.is_none() {
            return Ok(());
        }
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        for chunk in cdrs.chunks(sql::UPSERT_CHUNK) {
            let statement = sql::rows(sql::CDR_INSERT, chunk.len());
            let text = b.sql(&statement);
            let mut q = sqlx::query(&text);
            for c in chunk {
                q = q
                    .bind(c.call_id.as_str())
                    .bind(c.caller.as_str())
                    .bind(c.callee.as_str())
                    .bind(c.caller_source.as_str())
                    .bind(c.callee_target.as_str())
                    .bind(c.started_at)
                    .bind(c.answered_at)
                    .bind(c.ended_at)
                    .bind(c.disposition.as_str())
                    .bind(c.status)
                    .bind(c.codec.as_deref())
                    .bind(c.mos_milli)
                    .bind(c.streams.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        if let Some(keep) = keep {
            sqlx::query(&b.sql(sql::CDR_CAP))
                .bind(keep.max(1) - 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        w.keep();
        Ok(())
    }

    /// Records of calls started at or after `since` (unix ms), newest first,
    /// at most `limit`.
    pub async fn cdrs_since(&self, since: i64, limit: i64) -> Result<Vec<CdrRecord>, StoreError> {
        let text = self.backend.sql(sql::CDR_SINCE);
        let q = sqlx::query(&text)
            .bind(since)
            .bind(limit)
            .try_map(|row: AnyRow| cdr_from_row(&row));
        read!(self, q, fetch_all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    fn cdr(call_id: &str, started_at: i64) -> CdrRecord {
        CdrRecord {
            call_id: call_id.into(),
            caller: "sip:1001@example.com".into(),
            callee: "sip:1002@example.com".into(),
            caller_source: "udp:192.0.2.1:5060".into(),
            callee_target: "udp:192.0.2.2:5060".into(),
            started_at,
            answered_at: Some(started_at + 1000),
            ended_at: started_at + 60_000,
            disposition: "answered".into(),
            status: None,
            codec: Some("PCMU".into()),
            mos_milli: Some(4410),
            streams: "[]".into(),
        }
    }

    #[tokio::test]
    async fn cdrs_survive_reopen_and_the_oldest_go_first() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("db");
        let store = Store::open_sqlite(&path, StoreOptions::default())
            .await
            .unwrap();
        let batch: Vec<CdrRecord> = (0..5).map(|i| cdr(&format!("c{i}"), 1000 * i)).collect();
        store.cdrs_write(&batch[..2], None).await.unwrap();
        store.cdrs_write(&batch[2..], Some(3)).await.unwrap();
        // More rows than one statement takes.
        let many: Vec<CdrRecord> = (0..150).map(|i| cdr(&format!("m{i}"), 10 + i)).collect();
        store.cdrs_write(&many, None).await.unwrap();
        assert_eq!(store.cdrs_since(0, 1000).await.unwrap().len(), 153);
        store.cdrs_write(&[], Some(3)).await.unwrap();
        store.close().await;
        let store = Store::open_sqlite(&path, StoreOptions::default())
            .await
            .unwrap();
        let all = store.cdrs_since(0, 100).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids, ["c4", "c3", "c2"]);
        assert_eq!(all[0], batch[4]);
        let recent = store.cdrs_since(3000, 100).await.unwrap();
        assert_eq!(recent.len(), 2);
        let one = store.cdrs_since(0, 1).await.unwrap();
        assert_eq!(one[0].call_id, "c4");
    }
}
