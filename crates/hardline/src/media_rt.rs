//! The media relay's runtime: the UDP sockets of the relay ports and one
//! thread that moves packets between them. The thread waits on every
//! socket at once (epoll through mio), hands each datagram to the sans-IO
//! relay, which says where it goes, and sends it on; no async runtime and
//! no SIP lock on the packet path. What the relay notices (silent calls,
//! poor quality, a finished announcement) goes to the SIP core through a
//! channel.

use media::relay::{Counters, Event, Verdict};
use media::{Ports, Relay, RelayConfig};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use pbx::{Metrics, SharedRelay};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// The relay sockets, by port (the RTP port and the next).
struct Table {
    base: u16,
    socks: Vec<Option<UdpSocket>>,
    /// The sockets are dual-stack IPv6: IPv4 peers are reached at their
    /// mapped address.
    v6: bool,
}

impl Table {
    fn get(&self, port: u16) -> Option<&UdpSocket> {
        let i = usize::from(port.checked_sub(self.base)?);
        self.socks.get(i)?.as_ref()
    }
}

/// Opens relay ports for the relay: binds sockets and registers them with
/// the media thread's poll.
struct SocketPorts {
    /// `[::]` (dual-stack) where the host has IPv6, else `0.0.0.0`.
    bind: IpAddr,
    table: Arc<Mutex<Table>>,
    registry: mio::Registry,
}

impl SocketPorts {
    fn bind_one(&self, port: u16) -> Option<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(self.bind, port)).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(UdpSocket::from_std(s))
    }
}

impl Ports for SocketPorts {
    fn open(&mut self, port: u16) -> bool {
        let Some(mut rtp) = self.bind_one(port) else {
            return false;
        };
        let Some(mut rtcp) = self.bind_one(port.wrapping_add(1)) else {
            return false;
        };
        let Ok(mut t) = self.table.lock() else {
            return false;
        };
        let i = usize::from(port - t.base);
        if i + 1 >= t.socks.len() {
            return false;
        }
        let reg = |s: &mut UdpSocket, p: u16| {
            self.registry
                .register(s, Token(usize::from(p)), Interest::READABLE)
                .is_ok()
        };
        if !reg(&mut rtp, port) || !reg(&mut rtcp, port + 1) {
            return false;
        }
        t.socks[i] = Some(rtp);
        t.socks[i + 1] = Some(rtcp);
        true
    }

    fn close(&mut self, port: u16) {
        let Ok(mut t) = self.table.lock() else {
            return;
        };
        let i = usize::from(port.saturating_sub(t.base));
        for k in [i, i + 1] {
            if let Some(mut s) = t.socks.get_mut(k).and_then(Option::take) {
                let _ = self.registry.deregister(&mut s);
            }
        }
    }
}

/// The running relay: the handle the SIP core uses, and how to stop it.
pub struct MediaRuntime {
    pub relay: SharedRelay,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaRuntime {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const WAKER: Token = Token(usize::MAX);

/// Starts the media thread; events for the SIP core go to `events`.
pub fn start(
    cfg: RelayConfig,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<Event>,
) -> std::io::Result<MediaRuntime> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (base, hi) = (cfg.first_port(), cfg.port_range.1);
    // Dual-stack where IPv6 exists (IPv4 peers appear as mapped addresses,
    // turned back into IPv4 before the relay sees them).
    let bind = if std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).is_ok() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let table = Arc::new(Mutex::new(Table {
        base,
        socks: (base..=hi).map(|_| None).collect(),
        v6: bind.is_ipv6(),
    }));
    let ports = SocketPorts {
        bind,
        table: table.clone(),
        registry: poll.registry().try_clone()?,
    };
    let pairs = cfg.pairs();
    info!(
        first = base,
        last = hi,
        pairs,
        timeout_secs = cfg.timeout.as_secs(),
        "media relay ready"
    );
    let relay: SharedRelay = Arc::new(Mutex::new(Relay::new(
        cfg,
        Box::new(ports) as Box<dyn Ports + Send>,
        rand::random(),
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (relay, stop) = (relay.clone(), stop.clone());
        std::thread::Builder::new()
            .name("hardline-media".into())
            .spawn(move || media_loop(poll, relay, table, metrics, events, stop))?
    };
    Ok(MediaRuntime {
        relay,
        stop,
        waker,
        thread: Some(thread),
    })
}

/// Datagrams taken from one socket per turn, so one busy port cannot
/// starve the others; a socket with more waits for the next turn.
const PER_SOCKET: usize = 32;

fn media_loop(
    mut poll: Poll,
    relay: SharedRelay,
    table: Arc<Mutex<Table>>,
    metrics: Arc<Metrics>,
    events_tx: mpsc::UnboundedSender<Event>,
    stop: Arc<AtomicBool>,
) {
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    // Sockets that still had datagrams when their turn ended (mio is
    // edge-triggered: no new event comes for them).
    let mut backlog: Vec<u16> = Vec::new();
    let mut next_backlog: Vec<u16> = Vec::new();
    let mut last = Counters::default();
    let mut next_metrics = Instant::now() + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let timeout = if !backlog.is_empty() {
            Duration::ZERO
        } else {
            let deadline = relay.lock().ok().and_then(|r| r.poll_timeout());
            let now = Instant::now();
            deadline
                .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now))
                .min(Duration::from_secs(1))
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                error!(error = %e, "media: poll failed; relay stopped");
                return;
            }
        }
        let now = Instant::now();
        let Ok(mut r) = relay.lock() else {
            return;
        };
        let Ok(t) = table.lock() else {
            return;
        };
        let ready = events
            .iter()
            .filter(|e| e.token() != WAKER)
            .map(|e| e.token().0 as u16)
            .chain(backlog.drain(..));
        for port in ready {
            let Some(sock) = t.get(port) else {
                continue;
            };
            let mut more = true;
            for _ in 0..PER_SOCKET {
                let (n, src) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        more = false;
                        break;
                    }
                    // ICMP errors of earlier sends surface here: skip.
                    Err(_) => continue,
                };
                let src = canonical(src);
                if let Verdict::Forward { from, to } = r.on_packet(now, port, src, &buf[..n]) {
                    send(&t, from, to, &buf[..n]);
                }
            }
            if more && !next_backlog.contains(&port) {
                next_backlog.push(port);
            }
        }
        std::mem::swap(&mut backlog, &mut next_backlog);
        if r.poll_timeout().is_some_and(|d| d <= now) {
            r.handle_timeout(now);
        }
        while let Some((from, to, pkt)) = r.poll_transmit() {
            send(&t, from, to, &pkt);
        }
        while let Some(e) = r.poll_event() {
            let _ = events_tx.send(e);
        }
        if now >= next_metrics {
            next_metrics = now + Duration::from_secs(1);
            let c = r.counters();
            export(&metrics, &last, &c);
            metrics.media_sessions.set(r.session_count() as i64);
            last = c;
        }
    }
}

fn send(t: &Table, from: u16, to: SocketAddr, pkt: &[u8]) {
    let Some(sock) = t.get(from) else {
        return;
    };
    let to = match to {
        SocketAddr::V4(v4) if t.v6 => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => to,
    };
    if let Err(e) = sock.send_to(pkt, to) {
        if e.kind() != ErrorKind::WouldBlock {
            tracing::debug!(error = %e, %to, "media: send failed");
        }
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn export(m: &Metrics, last: &Counters, c: &Counters) {
    m.media_packets.inc_by(c.packets - last.packets);
    m.media_bytes.inc_by(c.bytes - last.bytes);
    m.media_drop("no_session", c.drops_no_session - last.drops_no_session);
    m.media_drop("stranger", c.drops_stranger - last.drops_stranger);
    m.media_drop("malformed", c.drops_malformed - last.drops_malformed);
    m.media_drop("absurd_sequence", c.drops_absurd - last.drops_absurd);
    m.media_drop(
        "no_destination",
        c.drops_no_destination - last.drops_no_destination,
    );
}

/// Relay events into the SIP core (hang-ups, quality events).
pub async fn events_task(rt: Arc<crate::server::Runtime>, mut rx: mpsc::UnboundedReceiver<Event>) {
    while let Some(e) = rx.recv().await {
        rt.with_core(|c, now| c.media_event(now, e));
    }
    warn!("media: relay events stopped");
}

/// Quality events to the notification hook (`shield.notify_command` /
/// `shield.notify_url`), gathered: at most one report per
/// `notify::MIN_INTERVAL`.
pub async fn quality_task(
    notifier: crate::notify::Notifier,
    mut rx: mpsc::UnboundedReceiver<pbx::QualityEvent>,
) {
    use crate::notify::json_str;
    let mut next = tokio::time::Instant::now();
    let mut pending: Vec<String> = Vec::new();
    loop {
        let got = tokio::select! {
            e = rx.recv() => e,
            _ = tokio::time::sleep_until(next), if !pending.is_empty() => None,
        };
        if let Some(q) = &got {
            if !notifier.enabled() {
                continue;
            }
            if pending.len() < 1000 {
                pending.push(format!(
                    "{{\"event\":\"call_quality\",\"call_id\":{},\"from\":{},\"to\":{},\"direction\":{},\"mos\":{:.2}}}",
                    json_str(&q.call_id),
                    json_str(&q.from),
                    json_str(&q.to),
                    json_str(q.direction),
                    q.mos
                ));
            }
        } else if rx.is_closed() && pending.is_empty() {
            return;
        }
        if !pending.is_empty() && tokio::time::Instant::now() >= next {
            let summary = format!(
                "hardline on {}: {} call direction(s) below media.mos_threshold; `hardline calls` and `hardline cdr` tell more",
                notifier.domain,
                pending.len()
            );
            let report = notifier.report_with(&summary, &pending, crate::server::now().unix);
            pending.clear();
            next = tokio::time::Instant::now() + crate::notify::MIN_INTERVAL;
            let n = notifier.clone();
            tokio::spawn(async move { n.deliver_kind(report, "quality").await });
        }
    }
}
