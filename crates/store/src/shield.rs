//! The shield's persistent state: bans in force (restored into the kernel at
//! start), their history (kept 90 days, at most 100 000 events), the
//! operators' ban requests queued by the CLI for the running server, and the
//! run-time trusted list.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{sql, Store, StoreError};

/// One ban in force. `source` is an IPv4 address or an IPv6 `/64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub source: String,
    pub rule: String,
    pub evidence: String,
    /// Unix seconds.
    pub since: i64,
    /// Unix seconds; `None`: until removed.
    pub until: Option<i64>,
    pub offense: i64,
}

/// One entry of the ban history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEvent {
    pub at: i64,
    pub source: String,
    /// `banned`, `unbanned:expired`, `unbanned:operator`, ...
    pub event: String,
    pub rule: String,
    pub detail: String,
}

/// What `hardline ban add|remove` asks of the running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanAction {
    Ban,
    Unban,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRequest {
    pub id: i64,
    pub action: BanAction,
    pub source: String,
    pub reason: String,
    /// Ban length; `None`: until removed.
    pub secs: Option<i64>,
    pub requested_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRecord {
    /// An address, a CIDR prefix or a host name.
    pub entry: String,
    pub note: String,
    pub added_at: i64,
}

/// History older than this is dropped.
const EVENT_RETENTION_SECS: i64 = 90 * 86_400;

fn ban_from_row(row: &AnyRow) -> Result<BanRecord, sqlx::Error> {
    Ok(BanRecord {
        source: row.try_get(0)?,
        rule: row.try_get(1)?,
        evidence: row.try_get(2)?,
        since: row.try_get(3)?,
        until: row.try_get(4)?,
        offense: row.try_get(5)?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<BanEvent, sqlx::Error> {
    Ok(BanEvent {
        at: row.try_get(0)?,
        source: row.try_get(1)?,
        event: row.try_get(2)?,
        rule: row.try_get(3)?,
        detail: row.try_get(4)?,
    })
}

impl Store {
    /// Bans put in force or replaced, bans ended, and their events, in one
    /// transaction.
    pub async fn bans_write(
        &self,
        put: &[BanRecord],
        ended: &[String],
        events: &[BanEvent],
        now: i64,
    ) -> Result<(), StoreError> {
        if put.is_empty() && ended.is_empty() && events.is_empty() {
            return Ok(());
        }
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        for ban in put {
            sqlx::query(&b.sql(sql::BAN_UPSERT))
                .bind(ban.source.as_str())
                .bind(ban.rule.as_str())
                .bind(ban.evidence.as_str())
                .bind(ban.since)
                .bind(ban.until)
                .bind(ban.offense)
                .execute(&mut *tx)
                .await?;
        }
        for source in ended {
            sqlx::query(&b.sql(sql::BAN_DELETE))
                .bind(source.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for e in events {
            sqlx::query(&b.sql(sql::BAN_EVENT_INSERT))
                .bind(e.at)
                .bind(e.source.as_str())
                .bind(e.event.as_str())
                .bind(e.rule.as_str())
                .bind(e.detail.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if !events.is_empty() {
            sqlx::query(&b.sql(sql::BAN_EVENTS_PRUNE))
                .bind(now - EVENT_RETENTION_SECS)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&b.sql(sql::BAN_EVENTS_CAP))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        w.keep();
        Ok(())
    }

    /// Every stored ban (expired ones included: the caller filters).
    pub async fn bans_load(&self) -> Result<Vec<BanRecord>, StoreError> {
        let text = self.backend.sql(sql::BAN_LOAD);
        let q = sqlx::query(&text).try_map(|row: AnyRow| ban_from_row(&row));
        read!(self, q, fetch_all)
    }

    /// The newest `limit` events, of one source or of all.
    pub async fn ban_events(
        &self,
        source: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BanEvent>, StoreError> {
        match source {
            Some(s) => {
                let text = self.backend.sql(sql::BAN_EVENTS_FOR);
                let q = sqlx::query(&text)
                    .bind(s)
                    .bind(limit)
                    .try_map(|row: AnyRow| event_from_row(&row));
                read!(self, q, fetch_all)
            }
            None => {
                let text = self.backend.sql(sql::BAN_EVENTS_ALL);
                let q = sqlx::query(&text)
                    .bind(limit)
                    .try_map(|row: AnyRow| event_from_row(&row));
                read!(self, q, fetch_all)
            }
        }
    }

    /// Queues an operator's ban or unban for the server, which applies it
    /// within seconds (or at its next start).
    pub async fn ban_request(
        &self,
        action: BanAction,
        source: &str,
        reason: &str,
        secs: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        sqlx::query(&b.sql(sql::BAN_REQUEST_INSERT))
            .bind(match action {
                BanAction::Ban => "ban",
                BanAction::Unban => "unban",
            })
            .bind(source)
            .bind(reason)
            .bind(secs)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.bump_generation(&mut tx, sql::SHIELD_GENERATION_KEY)
            .await?;
        tx.commit().await?;
        w.keep();
        Ok(())
    }

    /// Requests not yet applied, oldest first.
    pub async fn ban_requests(&self) -> Result<Vec<BanRequest>, StoreError> {
        let text = self.backend.sql(sql::BAN_REQUEST_LIST);
        let q = sqlx::query(&text).try_map(|row: AnyRow| {
            let action: String = row.try_get(1)?;
            Ok(BanRequest {
                id: row.try_get(0)?,
                action: if action == "ban" {
                    BanAction::Ban
                } else {
                    BanAction::Unban
                },
                source: row.try_get(2)?,
                reason: row.try_get(3)?,
                secs: row.try_get(4)?,
                requested_at: row.try_get(5)?,
            })
        });
        read!(self, q, fetch_all)
    }

    /// Drops the requests up to `id` once applied.
    pub async fn ban_requests_done(&self, id: i64) -> Result<(), StoreError> {
        let mut w = self.held_writer().await?;
        sqlx::query(&self.backend.sql(sql::BAN_REQUEST_DELETE_UPTO))
            .bind(id)
            .execute(&mut *w.conn)
            .await?;
        w.keep();
        Ok(())
    }

    pub async fn trusted_list(&self) -> Result<Vec<TrustedRecord>, StoreError> {
        let text = self.backend.sql(sql::TRUSTED_LIST);
        let q = sqlx::query(&text).try_map(|row: AnyRow| {
            Ok(TrustedRecord {
                entry: row.try_get(0)?,
                note: row.try_get(1)?,
                added_at: row.try_get(2)?,
            })
        });
        read!(self, q, fetch_all)
    }

    /// Adds (or re-notes) a trusted entry; bumps the shield generation.
    pub async fn trusted_add(&self, entry: &str, note: &str, now: i64) -> Result<(), StoreError> {
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        sqlx::query(&b.sql(sql::TRUSTED_INSERT))
            .bind(entry)
            .bind(note)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.bump_generation(&mut tx, sql::SHIELD_GENERATION_KEY)
            .await?;
        tx.commit().await?;
        w.keep();
        Ok(())
    }

    /// Removes a trusted entry; whether it existed.
    pub async fn trusted_remove(&self, entry: &str) -> Result<bool, StoreError> {
        let b = self.backend;
        let mut w = self.held_writer().await?;
        let mut tx = w.begin(b).await?;
        let removed = sqlx::query(&b.sql(sql::TRUSTED_DELETE))
            .bind(entry)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            self.bump_generation(&mut tx, sql::SHIELD_GENERATION_KEY)
                .await?;
        }
        tx.commit().await?;
        w.keep();
        Ok(removed)
    }

    /// Counter bumped by every ban request and trusted-list change; the
    /// server polls it.
    pub async fn shield_generation(&self) -> Result<i64, StoreError> {
        self.generation(sql::SHIELD_GENERATION_KEY).await
    }
}
