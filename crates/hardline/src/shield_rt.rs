//! The runtime around the shield: the kernel enforcer on a thread of its
//! own, ban events to the store and the log, operators' requests queued by
//! the CLI, and the trusted list from the store.

use crate::notify::Notifier;
use crate::server::{now, Runtime};
use shield::enforce::{Enforcer, InProcess, Nft, Op};
use shield::{Ban, Event, SourceKey, Unban};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{BanAction, BanEvent, BanRecord, Store};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// To the kernel thread.
pub enum KernelMsg {
    Apply(Vec<Op>),
    /// The complete set of bans (start-up).
    Sync(Vec<(SourceKey, Option<Duration>)>),
}

/// The kernel side: the enforcer chosen at start-up, driven from its own
/// thread so a slow netlink answer never holds up SIP.
pub struct Kernel {
    pub tx: std_mpsc::Sender<KernelMsg>,
}

/// Opens nftables when the shield is on and it is available; otherwise the
/// shield drops in-process, which is said once, loudly.
pub fn start_kernel(cfg: &shield::ShieldConfig, rt_metrics: Arc<pbx::Metrics>) -> Kernel {
    let enforcer: Box<dyn Enforcer> = if !cfg.enabled {
        Box::new(InProcess)
    } else if !cfg.kernel {
        info!("shield: kernel enforcement off (shield.kernel = false); banned sources are dropped in-process");
        Box::new(InProcess)
    } else {
        match Nft::open() {
            Ok(n) => {
                info!(
                    table = "inet hardline",
                    "shield: bans enforced in the kernel (nftables sets ban4, ban6)"
                );
                Box::new(n)
            }
            Err(e) => {
                warn!(
                    error = %e,
                    "shield: nftables unavailable (hardline needs root and nf_tables for \
                     kernel bans); banned sources are dropped in-process instead"
                );
                Box::new(InProcess)
            }
        }
    };
    let (tx, rx) = std_mpsc::channel();
    if !enforcer.in_kernel() {
        // Nothing to copy anywhere, so no thread; sends to the dropped
        // receiver fail and are ignored.
        drop(rx);
        return Kernel { tx };
    }
    let spawned = std::thread::Builder::new()
        .name("shield-kernel".into())
        .spawn(move || kernel_thread(enforcer, rx, rt_metrics));
    if let Err(e) = spawned {
        warn!(error = %e, "shield: no kernel thread; banned sources are dropped in-process");
    }
    Kernel { tx }
}

/// Applies updates; keeps what the kernel should hold, so after a failure
/// it retries by re-syncing everything (with backoff) until it succeeds.
fn kernel_thread(
    mut enforcer: Box<dyn Enforcer>,
    rx: std_mpsc::Receiver<KernelMsg>,
    metrics: Arc<pbx::Metrics>,
) {
    // Source -> end of the ban (None: no end).
    let mut want: HashMap<SourceKey, Option<Instant>> = HashMap::new();
    let mut dirty = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let msg = if dirty {
            match rx.recv_timeout(backoff) {
                Ok(m) => Some(m),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            }
        };
        let res = match msg {
            Some(KernelMsg::Apply(requested)) => {
                let t = Instant::now();
                let mut ops = Vec::with_capacity(requested.len());
                for op in requested {
                    match op {
                        Op::Add(k, ttl) => {
                            // Adding an element the set holds keeps its old
                            // timeout: a replaced ban is removed first.
                            if want.insert(k, ttl.map(|d| t + d)).is_some() {
                                ops.push(Op::Remove(k));
                            }
                        }
                        Op::Remove(k) => {
                            want.remove(&k);
                        }
                    }
                    ops.push(op);
                }
                if dirty {
                    Ok(())
                } else {
                    enforcer.apply(&ops)
                }
            }
            Some(KernelMsg::Sync(all)) => {
                let t = Instant::now();
                want = all
                    .into_iter()
                    .map(|(k, ttl)| (k, ttl.map(|d| t + d)))
                    .collect();
                dirty = true;
                Ok(())
            }
            None => Ok(()),
        };
        if let Err(e) = res {
            metrics.shield_kernel_errors.inc();
            warn!(error = %e, "shield: kernel ban update failed; re-syncing the sets");
            dirty = true;
        }
        if dirty {
            let t = Instant::now();
            want.retain(|_, end| end.is_none_or(|e| e > t));
            let all: Vec<(SourceKey, Option<Duration>)> = want
                .iter()
                .map(|(k, end)| (*k, end.map(|e| e - t)))
                .collect();
            match enforcer.sync(&all) {
                Ok(()) => {
                    dirty = false;
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    metrics.shield_kernel_errors.inc();
                    error!(error = %e, bans = all.len(), retry_in = ?backoff, "shield: kernel ban sets out of date");
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

fn ttl_of(ban: &Ban, now_unix: u64) -> Option<Duration> {
    ban.until
        .map(|u| Duration::from_secs(u.saturating_sub(now_unix).max(1)))
}

pub fn record_of(b: &Ban) -> BanRecord {
    BanRecord {
        source: b.source.to_string(),
        rule: b.rule.as_str().to_string(),
        evidence: b.evidence.clone(),
        since: b.since as i64,
        until: b.until.map(|u| u as i64),
        offense: i64::from(b.offense),
    }
}

pub fn ban_of(r: &BanRecord) -> Option<Ban> {
    Some(Ban {
        source: r.source.parse().ok()?,
        rule: shield::Rule::parse(&r.rule)?,
        evidence: r.evidence.clone(),
        since: u64::try_from(r.since).ok()?,
        until: r.until.and_then(|u| u64::try_from(u).ok()),
        offense: u32::try_from(r.offense).unwrap_or(1),
    })
}

fn unban_word(why: Unban) -> &'static str {
    match why {
        Unban::Expired => "unbanned:expired",
        Unban::Operator => "unbanned:operator",
        Unban::Trusted => "unbanned:trusted",
        Unban::Evicted => "unbanned:evicted",
    }
}

/// Ban events from the core: log, kernel, store, incident reports.
/// Gathered for 20 ms so a flood of bans costs one kernel batch and one
/// transaction; reports go out at most every `notify::MIN_INTERVAL`.
pub async fn events_task(
    store: Store,
    kernel: std_mpsc::Sender<KernelMsg>,
    notifier: Notifier,
    metrics: Arc<pbx::Metrics>,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    let mut pending: Vec<String> = Vec::new();
    let mut next_report = tokio::time::Instant::now();
    let mut unsaved = Unsaved::default();
    loop {
        let first = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => return,
            },
            _ = tokio::time::sleep_until(next_report), if !pending.is_empty() => {
                send_report(&notifier, &mut pending, &mut next_report);
                continue;
            }
            _ = tokio::time::sleep_until(unsaved.retry_at), if !unsaved.batches.is_empty() => {
                unsaved.flush(&store, &metrics).await;
                continue;
            }
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut events = vec![first];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
            if events.len() >= 4096 {
                break;
            }
        }
        let t = now().unix;
        if notifier.enabled() {
            pending.extend(events.iter().filter_map(crate::notify::event_json));
            if !pending.is_empty() && tokio::time::Instant::now() >= next_report {
                send_report(&notifier, &mut pending, &mut next_report);
            }
        }
        let mut ops = Vec::new();
        let mut put: Vec<BanRecord> = Vec::new();
        let mut ended: Vec<String> = Vec::new();
        let mut history = Vec::new();
        for e in events {
            match e {
                Event::Banned(b) => {
                    warn!(
                        source = %b.source,
                        rule = b.rule.as_str(),
                        offense = b.offense,
                        until = ?b.until,
                        evidence = %b.evidence,
                        "shield: banned"
                    );
                    ops.push(Op::Add(b.source, ttl_of(&b, t)));
                    history.push(BanEvent {
                        at: t as i64,
                        source: b.source.to_string(),
                        event: "banned".into(),
                        rule: b.rule.as_str().into(),
                        detail: b.evidence.clone(),
                    });
                    ended.retain(|s| *s != b.source.to_string());
                    put.push(record_of(&b));
                }
                Event::Unbanned { ban, why } => {
                    info!(source = %ban.source, rule = ban.rule.as_str(), why = unban_word(why), "shield: ban lifted");
                    ops.push(Op::Remove(ban.source));
                    history.push(BanEvent {
                        at: t as i64,
                        source: ban.source.to_string(),
                        event: unban_word(why).into(),
                        rule: ban.rule.as_str().into(),
                        detail: String::new(),
                    });
                    let s = ban.source.to_string();
                    put.retain(|p| p.source != s);
                    ended.push(s);
                }
                Event::UserBlocked {
                    source,
                    user,
                    failures,
                    until,
                } => {
                    warn!(%source, %user, failures, until, "shield: user blocked from this source (shared NAT: the source stays)");
                    history.push(BanEvent {
                        at: t as i64,
                        source: source.to_string(),
                        event: "user_blocked".into(),
                        rule: "auth_failure".into(),
                        detail: format!("user {user}: {failures} wrong credentials; until {until}"),
                    });
                }
                Event::AccountThrottled {
                    user,
                    failures,
                    sources,
                    until,
                } => {
                    warn!(%user, failures, sources, until, "shield: account throttled against distributed guessing (known sources still work)");
                    history.push(BanEvent {
                        at: t as i64,
                        source: String::new(),
                        event: "account_throttled".into(),
                        rule: "auth_failure".into(),
                        detail: format!("account {user}: {failures} wrong credentials from {sources} sources; until {until}"),
                    });
                }
            }
        }
        if !ops.is_empty() {
            let _ = kernel.send(KernelMsg::Apply(ops));
        }
        unsaved.push((put, ended, history, t as i64));
        unsaved.flush(&store, &metrics).await;
    }
}

/// Ban batches not yet in the store, written in order; a failed write is
/// retried (every 5 s and with the next batch) until it succeeds, so the
/// store catches up with the kernel and memory, where the bans are in force
/// meanwhile.
/// Bans put in force, bans ended, their events, and the time: one
/// `Store::bans_write`.
type BanBatch = (Vec<BanRecord>, Vec<String>, Vec<BanEvent>, i64);

struct Unsaved {
    batches: std::collections::VecDeque<BanBatch>,
    retry_at: tokio::time::Instant,
}

impl Default for Unsaved {
    fn default() -> Self {
        Unsaved {
            batches: Default::default(),
            retry_at: tokio::time::Instant::now(),
        }
    }
}

/// Most batches kept for a store that keeps failing; past it the oldest
/// history goes (a warning says so).
const MAX_UNSAVED: usize = 1024;

impl Unsaved {
    fn push(&mut self, batch: BanBatch) {
        if self.batches.len() >= MAX_UNSAVED {
            self.batches.pop_front();
            warn!(
                "shield: the store has failed for long; the oldest unsaved ban changes are dropped"
            );
        }
        self.batches.push_back(batch);
    }

    async fn flush(&mut self, store: &Store, metrics: &pbx::Metrics) {
        while let Some((put, ended, history, t)) = self.batches.front() {
            match store.bans_write(put, ended, history, *t).await {
                Ok(()) => {
                    self.batches.pop_front();
                }
                Err(e) => {
                    metrics.shield_store_errors.inc();
                    error!(error = %e, waiting = self.batches.len(), "shield: storing bans failed; retrying in 5 s (they are in force meanwhile)");
                    self.retry_at = tokio::time::Instant::now() + Duration::from_secs(5);
                    return;
                }
            }
        }
    }
}

/// Hands the gathered events to the notifier (in the background) and
/// holds the next report back for `MIN_INTERVAL`.
fn send_report(notifier: &Notifier, pending: &mut Vec<String>, next: &mut tokio::time::Instant) {
    let report = notifier.report(pending, now().unix);
    pending.clear();
    *next = tokio::time::Instant::now() + crate::notify::MIN_INTERVAL;
    let n = notifier.clone();
    tokio::spawn(async move { n.deliver(report).await });
}

/// Bans from the store back into the shield and the kernel.
pub async fn restore(rt: &Arc<Runtime>, store: &Store, kernel: &std_mpsc::Sender<KernelMsg>) {
    let records = match store.bans_load().await {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "shield: loading stored bans failed; starting without them");
            return;
        }
    };
    let bans: Vec<Ban> = records.iter().filter_map(ban_of).collect();
    let t = now();
    let mut active = Vec::new();
    rt.with_core(|c, n| {
        let restored = c.shield().restore(n, bans);
        active = c
            .shield()
            .bans()
            .map(|b| (b.source, ttl_of(b, t.unix)))
            .collect();
        info!(restored, stored = records.len(), "shield: bans restored");
    });
    let _ = kernel.send(KernelMsg::Sync(active));
}

/// Applies what the CLI queued (bans, unbans, the trusted list) within
/// seconds of its writing, and re-resolves trusted host names every 5
/// minutes.
pub async fn requests_task(rt: Arc<Runtime>, store: Store, config_hosts: Vec<String>) {
    let mut last = -1;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut resolved: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut next_resolve = Instant::now();
    loop {
        tick.tick().await;
        let changed = match store.shield_generation().await {
            Ok(g) if g != last => Some(g),
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, "shield: reading the request counter failed");
                None
            }
        };
        let refresh = Instant::now() >= next_resolve;
        if changed.is_none() && !refresh {
            continue;
        }
        if refresh {
            next_resolve = Instant::now() + Duration::from_secs(300);
        }
        let ok = apply_requests(&rt, &store, &config_hosts, &mut resolved, refresh).await;
        if let (true, Some(g)) = (ok, changed) {
            last = g;
        }
    }
}

/// Addresses of `host`, or the last known ones when the lookup fails (a
/// DNS outage never drops a trusted provider).
async fn resolve(host: &str, cache: &mut HashMap<String, Vec<IpAddr>>, fresh: bool) -> Vec<IpAddr> {
    if !fresh {
        if let Some(a) = cache.get(host) {
            return a.clone();
        }
    }
    let lookup = tokio::net::lookup_host((host, 0));
    match tokio::time::timeout(Duration::from_secs(3), lookup).await {
        Ok(Ok(addrs)) => {
            let mut v: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            v.sort();
            v.dedup();
            if cache.get(host) != Some(&v) {
                info!(%host, addrs = ?v, "shield: trusted host resolved");
            }
            cache.insert(host.to_string(), v.clone());
            v
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_string(),
            };
            let kept = cache.get(host).cloned().unwrap_or_default();
            warn!(%host, error = %why, kept = ?kept, "shield: resolving a trusted host failed; keeping its last known addresses");
            kept
        }
    }
}

async fn apply_requests(
    rt: &Arc<Runtime>,
    store: &Store,
    config_hosts: &[String],
    cache: &mut HashMap<String, Vec<IpAddr>>,
    fresh: bool,
) -> bool {
    let trusted = match store.trusted_list().await {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "shield: reading the trusted list failed");
            return false;
        }
    };
    let mut cidrs: Vec<shield::Cidr> = Vec::new();
    let mut hosts: Vec<&str> = config_hosts.iter().map(String::as_str).collect();
    for t in &trusted {
        match t.entry.parse::<shield::Cidr>() {
            Ok(c) => cidrs.push(c),
            Err(_) => hosts.push(&t.entry),
        }
    }
    for h in hosts {
        for ip in resolve(h, cache, fresh).await {
            if let Ok(c) = ip.to_string().parse::<shield::Cidr>() {
                cidrs.push(c);
            }
        }
    }
    rt.with_core(|c, n| c.shield().set_extra_trusted(cidrs, n));
    let reqs = match store.ban_requests().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "shield: reading ban requests failed");
            return false;
        }
    };
    let Some(max_id) = reqs.iter().map(|r| r.id).max() else {
        return true;
    };
    rt.with_core(|c, n| {
        for r in &reqs {
            let Ok(key) = r.source.parse::<SourceKey>() else {
                warn!(source = %r.source, "shield: ignoring a ban request for a bad address");
                continue;
            };
            match r.action {
                BanAction::Ban => {
                    let secs = r.secs.and_then(|s| u64::try_from(s).ok());
                    if let Err(e) = c.shield().ban_manual(n, key, &r.reason, secs) {
                        warn!(%key, error = %e, "shield: ban request refused");
                    }
                }
                BanAction::Unban => {
                    if c.shield().unban(key).is_none() {
                        info!(%key, "shield: unban request for a source not banned");
                    }
                }
            }
        }
    });
    if let Err(e) = store.ban_requests_done(max_id).await {
        warn!(error = %e, "shield: clearing applied ban requests failed");
    }
    true
}
