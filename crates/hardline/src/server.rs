//! `hardline serve`: builds the core from the config and the store, binds the
//! listeners and runs the tasks around the sans-IO core: socket readers, one
//! timer task, the group-commit store writer, user reload, signals.

use crate::setup;
use crate::shield_rt;
use crate::transport::{self, Transports};
use anyhow::{Context, Result};
use bytes::Bytes;
use mgmt::Config;
use pbx::io::{Flow, Now, Transmit, Transport};
use pbx::{Core, Metrics, StoreBatch};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::Store;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{error, info, warn};

struct Shared {
    core: Core,
    /// Deadline the timer task is sleeping towards, to know when to wake it.
    armed: Option<Instant>,
}

enum StoreMsg {
    Batch(StoreBatch),
    Cdr(pbx::CallRecord),
    Flush(oneshot::Sender<()>),
}

pub struct Runtime {
    shared: Mutex<Shared>,
    /// Ban events to `shield_rt::events_task`.
    shield_tx: mpsc::UnboundedSender<shield::Event>,
    pub transports: Transports,
    store_tx: mpsc::UnboundedSender<StoreMsg>,
    timer: Notify,
    limits: RwLock<sip::Limits>,
    metrics: Arc<Metrics>,
    /// Quality events for the notification hook.
    quality_tx: mpsc::UnboundedSender<pbx::QualityEvent>,
    /// The media relay, when `media.enabled`.
    relay: Option<pbx::SharedRelay>,
}

pub fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Now {
        mono: Instant::now(),
        unix,
    }
}

impl Runtime {
    pub fn limits(&self) -> sip::Limits {
        self.limits.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// Runs `f` on the core and dispatches everything it produced.
    pub(crate) fn with_core(self: &Arc<Self>, f: impl FnOnce(&mut Core, Now)) {
        let out = {
            let Ok(mut s) = self.shared.lock() else {
                return;
            };
            f(&mut s.core, now());
            self.drain(&mut s)
        };
        transport::send_all(self, out);
    }

    fn drain(&self, s: &mut Shared) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some(t) = s.core.poll_transmit() {
            out.push(t);
        }
        while let Some(b) = s.core.poll_store() {
            let _ = self.store_tx.send(StoreMsg::Batch(b));
        }
        while let Some(e) = s.core.poll_shield_event() {
            let _ = self.shield_tx.send(e);
        }
        while let Some(c) = s.core.poll_call_record() {
            let _ = self.store_tx.send(StoreMsg::Cdr(c));
        }
        while let Some(q) = s.core.poll_quality() {
            let _ = self.quality_tx.send(q);
        }
        let next = s.core.poll_timeout();
        if let Some(n) = next {
            if s.armed.is_none_or(|a| n < a) {
                s.armed = Some(n);
                self.timer.notify_one();
            }
        }
        out
    }

    pub fn input(self: &Arc<Self>, flow: Flow, data: Bytes) {
        self.with_core(|c, now| c.handle_input(now, flow, data));
    }

    pub fn send(self: &Arc<Self>, out: Vec<Transmit>) {
        transport::send_all(self, out);
    }

    /// Admission of a new TCP connection (the shield's verdict).
    pub fn admit_connection(self: &Arc<Self>, remote: std::net::SocketAddr) -> bool {
        let mut ok = true;
        self.with_core(|c, now| ok = c.admit_connection(now, remote));
        ok
    }

    pub fn transport_error(self: &Arc<Self>, flow: Flow) {
        self.with_core(|c, now| c.transport_error(now, flow));
    }

    pub fn metrics_send_failed(&self) {
        self.metrics.drop_reason("send_failed");
    }

    pub fn metrics_conn_refused(&self) {
        self.metrics.drop_reason("conn_limit");
    }

    pub fn metrics_drop(&self, reason: &'static str) {
        self.metrics.drop_reason(reason);
    }
}

async fn timer_task(rt: Arc<Runtime>) {
    loop {
        let deadline = match rt.shared.lock() {
            Ok(mut s) => {
                s.armed = s.core.poll_timeout();
                s.armed
            }
            Err(_) => return,
        };
        match deadline {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(d.into()) => {
                        rt.with_core(|c, now| c.handle_timeout(now));
                    }
                    _ = rt.timer.notified() => {}
                }
            }
            None => rt.timer.notified().await,
        }
    }
}

/// Group commit: every batch waiting when the previous transaction finished
/// goes into the next one, so REGISTER throughput does not depend on fsyncs.
async fn store_task(
    rt: Arc<Runtime>,
    store: Store,
    cdr_keep: u64,
    mut rx: mpsc::UnboundedReceiver<StoreMsg>,
) {
    // Registrations per commit at most (each a few rows); enough that the
    // gathering never caps throughput (4096 / 50 ms is 81 920/s).
    const MAX_BATCHES: usize = 4096;
    // Under load (the previous commit ended moments ago) a commit waits
    // 50 ms to gather more registrations: each commit is a round trip to the
    // database thread, a few WAL writes and an fsync, so at a few hundred
    // registrations per second small commits would be most of the CPU
    // (measured at 500/s: 150 us per registration with 20 ms, 117 us with
    // 50 ms). A REGISTER retransmits after 500 ms (T1), so 50 ms goes
    // unnoticed; when idle, nothing waits.
    const BUSY: Duration = Duration::from_millis(20);
    const GATHER: Duration = Duration::from_millis(50);
    let mut last_commit: Option<Instant> = None;
    // Call records wait up to CDR_GATHER (or CDR_MAX of them) for one
    // commit: each commit is an fsync, and at 100 calls/s one per call was
    // most of a call's CPU. A crash loses at most that second; SIGTERM
    // flushes them.
    const CDR_GATHER: Duration = Duration::from_secs(1);
    const CDR_MAX: usize = 512;
    let mut cdrs: Vec<store::CdrRecord> = Vec::new();
    let mut cdr_due: Option<tokio::time::Instant> = None;
    // Trimming the records to cdr_keep walks the index: once a minute.
    let mut last_trim: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = sleep_until_opt(cdr_due) => {
                write_cdrs(&store, &mut cdrs, cdr_keep, &mut last_trim).await;
                cdr_due = None;
                continue;
            }
        };
        if last_commit.is_some_and(|t| t.elapsed() < BUSY) && rx.len() < MAX_BATCHES {
            tokio::time::sleep(GATHER).await;
        }
        let mut batches = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                StoreMsg::Batch(b) => batches.push(b),
                StoreMsg::Cdr(c) => cdrs.push(crate::calls::to_store(&c)),
                StoreMsg::Flush(tx) => flushes.push(tx),
            }
            if batches.len() < MAX_BATCHES {
                next = rx.try_recv().ok();
            }
        }
        if !batches.is_empty() {
            let ops: Vec<store::RegOp> =
                batches.iter().flat_map(|b| b.ops.iter().cloned()).collect();
            let res = store.apply(&ops).await;
            if let Err(e) = &res {
                error!(error = %e, ops = ops.len(), "storing registrations failed");
            }
            let ids: Vec<u64> = batches.iter().map(|b| b.id).collect();
            let ok = res.is_ok();
            last_commit = Some(Instant::now());
            rt.with_core(|c, now| {
                for id in ids {
                    c.store_done(now, id, ok);
                }
            });
        }
        if cdrs.len() >= CDR_MAX || (!flushes.is_empty() && !cdrs.is_empty()) {
            write_cdrs(&store, &mut cdrs, cdr_keep, &mut last_trim).await;
            cdr_due = None;
        } else if !cdrs.is_empty() && cdr_due.is_none() {
            cdr_due = Some(tokio::time::Instant::now() + CDR_GATHER);
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Stores the gathered call records in one transaction, retried a few
/// times (a record is never half written); trims to `keep` once a minute.
async fn write_cdrs(
    store: &Store,
    cdrs: &mut Vec<store::CdrRecord>,
    keep: u64,
    last_trim: &mut Option<Instant>,
) {
    if cdrs.is_empty() {
        return;
    }
    let trim = last_trim
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        .then_some(keep as i64);
    for attempt in 0..5 {
        match store.cdrs_write(cdrs, trim).await {
            Ok(()) => {
                if trim.is_some() {
                    *last_trim = Some(Instant::now());
                }
                break;
            }
            Err(e) if attempt == 4 => {
                error!(error = %e, records = cdrs.len(), "storing call records failed; they are lost")
            }
            Err(e) => {
                warn!(error = %e, records = cdrs.len(), "storing call records failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    cdrs.clear();
}

/// Picks up users added or changed by the CLI while we run.
async fn users_task(rt: Arc<Runtime>, store: Store) {
    let mut last = store.users_generation().await.unwrap_or(-1);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut purge_tick = 0u32;
    loop {
        tick.tick().await;
        match store.users_generation().await {
            Ok(g) if g != last => match store.users_list().await {
                Ok(users) => {
                    info!(users = users.len(), "user table changed, reloading");
                    last = g;
                    rt.with_core(|c, _| c.set_users(users));
                }
                Err(e) => warn!(error = %e, "reloading users failed"),
            },
            Ok(_) => {}
            Err(e) => warn!(error = %e, "reading user generation failed"),
        }
        purge_tick += 1;
        if purge_tick.is_multiple_of(30) {
            if let Err(e) = store.purge_expired(now().unix as i64).await {
                warn!(error = %e, "purging expired registrations failed");
            }
        }
        if purge_tick.is_multiple_of(5) {
            release_free_memory();
        }
    }
}

/// glibc keeps freed heap memory mapped; after a burst of transactions that
/// can be hundreds of MB nobody uses. Hand it back (musl returns it by itself).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub async fn serve(config_path: PathBuf, cfg: Config) -> Result<()> {
    let store = setup::open_store(&cfg).await?;
    setup::sync_config_users(&store, &cfg).await?;
    let secret = setup::load_or_create_secret(&store).await?;
    let users = store.users_list().await.context("loading users")?;
    let start = now();
    let bindings = store
        .bindings_load(start.unix as i64)
        .await
        .context("loading registrations")?;
    info!(
        users = users.len(),
        registrations = bindings.len(),
        "state loaded"
    );

    let mut registry = prometheus_client::registry::Registry::with_prefix("hardline");
    let metrics = Arc::new(Metrics::new(&mut registry));

    // Bind everything before starting: a bad listen address fails start-up.
    let mut transports = Transports::new();
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut locals = Vec::new();
    for l in &cfg.sip.listen {
        let (t, addr) = setup::listen_parts(l);
        match t {
            Transport::Udp => {
                let sock = bind_udp(addr).with_context(|| format!("binding udp:{addr}"))?;
                let local = sock.local_addr()?;
                let sock = Arc::new(sock);
                transports.add_udp(local, sock.clone());
                locals.push((Transport::Udp, local));
                udp.push((local, sock));
            }
            Transport::Tcp => {
                let lst = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding tcp:{addr}"))?;
                let local = lst.local_addr()?;
                transports.add_tcp(local);
                locals.push((Transport::Tcp, local));
                tcp.push((local, lst));
            }
        }
    }
    let zones = Arc::new(setup::load_zones(&cfg)?);
    let announcements = setup::load_announcements(&cfg)?;
    let core_cfg = setup::core_config(&cfg, &locals, secret, zones, announcements);
    let seed: u64 = rand::random();
    let mut core = Core::new(core_cfg, users, bindings, start, seed, metrics.clone());
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let media = if cfg.media.enabled {
        let m = crate::media_rt::start(cfg.media.relay.clone(), metrics.clone(), media_tx)
            .context("starting the media relay")?;
        core.set_relay(m.relay.clone());
        Some(m)
    } else {
        warn!("media relay disabled (media.enabled = false): RTP flows between phones directly, calls get no quality statistics");
        None
    };
    let kernel = shield_rt::start_kernel(&cfg.shield.config, metrics.clone());
    if !cfg.shield.config.enabled {
        warn!("shield disabled (shield.enabled = false): no flood limits, no bans, no scanner blocking");
    }

    let (store_tx, store_rx) = mpsc::unbounded_channel();
    let (shield_tx, shield_rx) = mpsc::unbounded_channel();
    let (quality_tx, quality_rx) = mpsc::unbounded_channel();
    let rt = Arc::new(Runtime {
        shield_tx,
        shared: Mutex::new(Shared { core, armed: None }),
        transports,
        store_tx,
        timer: Notify::new(),
        limits: RwLock::new(cfg.limits.clone()),
        metrics,
        quality_tx,
        relay: media.as_ref().map(|m| m.relay.clone()),
    });

    // Bans in force before anything is received; then the CLI's requests.
    shield_rt::restore(&rt, &store, &kernel.tx).await;
    let mut tasks = Vec::new();
    let notifier = crate::notify::Notifier {
        command: cfg.shield.notify_command.clone(),
        url: cfg
            .shield
            .notify_url
            .as_deref()
            .and_then(crate::notify::parse_http_url),
        domain: cfg.sip.domain.clone(),
    };
    tasks.push(tokio::spawn(crate::media_rt::events_task(
        rt.clone(),
        media_rx,
    )));
    tasks.push(tokio::spawn(crate::media_rt::quality_task(
        notifier.clone(),
        quality_rx,
    )));
    tasks.push(tokio::spawn(crate::calls::control_task(
        rt.clone(),
        crate::calls::control_path(&cfg.storage.path),
    )));
    tasks.push(tokio::spawn(shield_rt::events_task(
        store.clone(),
        kernel.tx.clone(),
        notifier,
        rt.metrics.clone(),
        shield_rx,
    )));
    tasks.push(tokio::spawn(shield_rt::requests_task(
        rt.clone(),
        store.clone(),
        cfg.shield.trusted_hosts.clone(),
    )));
    for (local, sock) in udp {
        info!(transport = "udp", %local, "listening");
        tasks.push(tokio::spawn(transport::udp_loop(rt.clone(), local, sock)));
    }
    for (local, lst) in tcp {
        info!(transport = "tcp", %local, "listening");
        tasks.push(tokio::spawn(transport::tcp_accept_loop(
            rt.clone(),
            local,
            lst,
        )));
    }
    tasks.push(tokio::spawn(timer_task(rt.clone())));
    tasks.push(tokio::spawn(users_task(rt.clone(), store.clone())));
    let store_handle = tokio::spawn(store_task(
        rt.clone(),
        store.clone(),
        cfg.media.cdr_keep,
        store_rx,
    ));

    let registry = Arc::new(registry);
    let (metrics_stop_tx, metrics_stop_rx) = oneshot::channel::<()>();
    if let Some(addr) = setup::metrics_addr(&cfg) {
        let lst = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics.listen {addr}"))?;
        info!(listen = %lst.local_addr()?, "metrics endpoint");
        tokio::spawn(mgmt::serve_metrics(lst, registry.clone(), async {
            let _ = metrics_stop_rx.await;
        }));
    }
    info!(domain = %cfg.sip.domain, "hardline ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let config_storage_path = cfg.storage.path.clone();
    let mut current = cfg;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                match reload(&rt, &store, &config_path, &current).await {
                    Ok(next) => { current = next; info!(config = %config_path.display(), "configuration reloaded"); }
                    Err(e) => error!("configuration reload refused, the running configuration stays:\n{e:#}"),
                }
            }
        }
    }

    // Stop taking input, then make sure every accepted registration and
    // every call record is stored: calls still up end here (the relay
    // stops with the server).
    for t in &tasks {
        t.abort();
    }
    rt.with_core(|c, now| c.end_all_calls(now));
    if let Some(m) = media {
        m.stop();
    }
    let _ = std::fs::remove_file(crate::calls::control_path(&config_storage_path));
    let (ftx, frx) = oneshot::channel();
    let _ = rt.store_tx.send(StoreMsg::Flush(ftx));
    let _ = tokio::time::timeout(Duration::from_secs(10), frx).await;
    store_handle.abort();
    let _ = metrics_stop_tx.send(());
    store.close().await;
    info!("stopped");
    Ok(())
}

fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<UdpSocket> {
    let std_sock = std::net::UdpSocket::bind(addr)?;
    std_sock.set_nonblocking(true)?;
    // Bursts of REGISTERs arrive faster than one wake-up: a larger receive
    // buffer absorbs them instead of the kernel dropping datagrams.
    setup::set_socket_buffers(&std_sock, 4 << 20);
    UdpSocket::from_std(std_sock)
}

async fn reload(rt: &Arc<Runtime>, store: &Store, path: &Path, current: &Config) -> Result<Config> {
    let next = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if next.sip.listen != current.sip.listen {
        anyhow::bail!(
            "sip.listen changed: listeners are bound at start, restart hardline to change them"
        );
    }
    if next.storage.path != current.storage.path {
        anyhow::bail!("storage.path changed: restart hardline to move the database");
    }
    if next.metrics != current.metrics {
        anyhow::bail!("metrics changed: restart hardline to rebind the metrics endpoint");
    }
    if next.media.enabled != current.media.enabled
        || next.media.relay.port_range != current.media.relay.port_range
    {
        anyhow::bail!(
            "media.enabled or media.port_range changed: restart hardline to rebind the relay"
        );
    }
    setup::sync_config_users(store, &next).await?;
    let users = store.users_list().await?;
    let secret = setup::load_or_create_secret(store).await?;
    let locals = {
        let s = rt
            .shared
            .lock()
            .map_err(|_| anyhow::anyhow!("core lock poisoned"))?;
        s.core.local_addrs().to_vec()
    };
    let zones = Arc::new(setup::load_zones(&next)?);
    let announcements = setup::load_announcements(&next)?;
    let core_cfg = setup::core_config(&next, &locals, secret, zones, announcements);
    if let Some(r) = &rt.relay {
        if let Ok(mut r) = r.lock() {
            r.reconfigure(next.media.relay.clone());
        }
    }
    if let Ok(mut l) = rt.limits.write() {
        *l = next.limits.clone();
    }
    rt.with_core(|c, now| {
        c.reconfigure(now, core_cfg);
        c.set_users(users);
    });
    Ok(next)
}
