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
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// The relay sockets, by port (the RTP port and the next). A map, sized
/// by the calls in progress: a slot per port of the range would be 80 KB
/// of resident memory on an idle router.
struct Table {
    socks: HashMap<u16, UdpSocket>,
    /// The sockets are dual-stack IPv6: IPv4 peers are reached at their
    /// mapped address.
    v6: bool,
}

impl Table {
    fn get(&self, port: u16) -> Option<&UdpSocket> {
        self.socks.get(&port)
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
        let reg = |s: &mut UdpSocket, p: u16| {
            self.registry
                .register(s, Token(usize::from(p)), Interest::READABLE)
                .is_ok()
        };
        if !reg(&mut rtp, port) || !reg(&mut rtcp, port + 1) {
            return false;
        }
        t.socks.insert(port, rtp);
        t.socks.insert(port + 1, rtcp);
        true
    }

    fn close(&mut self, port: u16) {
        let Ok(mut t) = self.table.lock() else {
            return;
        };
        for p in [port, port.wrapping_add(1)] {
            if let Some(mut s) = t.socks.remove(&p) {
                let _ = self.registry.deregister(&mut s);
            }
        }
        if t.socks.capacity() > 64 && t.socks.len() * 4 < t.socks.capacity() {
            let n = t.socks.len() * 2;
            t.socks.shrink_to(n);
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
        socks: HashMap::new(),
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
/// When the thread is busy, it waits this long after a turn that relayed
/// packets before the next, so that each wake-up serves the packets of
/// many calls at once: a G.711 stream sends every 20 ms, so under load most
/// wake-ups would otherwise carry a handful of packets, each paying for a
/// whole wake-up (measured on 2 vCPUs at 500 calls: 10-12 us of CPU per
/// packet without, 5 us with). The delay it adds is below a millisecond,
/// far inside any phone's jitter buffer. When the thread is not busy the
/// wait costs more than it saves (a timer wake-up is dearer than a packet
/// wake-up in a VM), so it is used only above `BUSY_ON` of a core spent
/// relaying, until the load falls below `BUSY_OFF`.
const COALESCE: Duration = Duration::from_micros(700);
const BUSY_ON: f64 = 0.25;
const BUSY_OFF: f64 = 0.08;

fn media_loop(
    mut poll: Poll,
    relay: SharedRelay,
    table: Arc<Mutex<Table>>,
    metrics: Arc<Metrics>,
    events_tx: mpsc::UnboundedSender<Event>,
    stop: Arc<AtomicBool>,
) {
    let mut events = Events::with_capacity(1024);
    let mut batch = Batch::new();
    // Sockets that still had datagrams when their turn ended (mio is
    // edge-triggered: no new event comes for them).
    let mut backlog: Vec<u16> = Vec::new();
    let mut next_backlog: Vec<u16> = Vec::new();
    let mut last = Counters::default();
    let mut next_metrics = Instant::now() + Duration::from_secs(1);
    let mut deadline: Option<Instant> = None;
    // Time spent relaying in the current second, and whether to coalesce.
    let mut busy = Duration::ZERO;
    let mut coalesce = false;
    while !stop.load(Ordering::Relaxed) {
        let timeout = if !backlog.is_empty() {
            Duration::ZERO
        } else {
            deadline
                .map_or(Duration::from_secs(1), |d| {
                    d.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_secs(1))
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                error!(error = %e, "media: poll failed; relay stopped");
                return;
            }
        }
        let now = Instant::now();
        let mut relayed = 0usize;
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
            for _ in 0..PER_SOCKET / BATCH {
                let n = match batch.recv(sock) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        more = false;
                        break;
                    }
                    // ICMP errors of earlier sends surface here: skip.
                    Err(_) => continue,
                };
                for i in 0..n {
                    let (pkt, src) = batch.get(i);
                    let Some(src) = src else {
                        continue;
                    };
                    relayed += 1;
                    if let Verdict::Forward { from, to } = r.on_packet(now, port, src, pkt) {
                        send(&t, from, to, pkt);
                    }
                }
                // A short batch drained the socket: no call to learn that
                // it is empty (half the receive calls otherwise).
                if n < BATCH {
                    more = false;
                    break;
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
            let load = busy.as_secs_f64();
            coalesce = if coalesce {
                load >= BUSY_OFF
            } else {
                load > BUSY_ON
            };
            busy = Duration::ZERO;
            let c = r.counters();
            export(&metrics, &last, &c);
            metrics.media_sessions.set(r.session_count() as i64);
            last = c;
        }
        deadline = r.poll_timeout();
        drop(t);
        drop(r);
        if relayed > 0 {
            let spent = now.elapsed();
            busy += spent;
            if coalesce && spent < COALESCE {
                std::thread::sleep(COALESCE - spent);
            }
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

/// Datagrams read per receive call.
const BATCH: usize = 8;

/// Buffers for `recvmmsg(2)`: up to `BATCH` datagrams of one socket per
/// system call.
struct Batch {
    bufs: Box<[[u8; 2048]; BATCH]>,
    addrs: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: Box::new([[0; 2048]; BATCH]),
            // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
            addrs: unsafe { std::mem::zeroed() },
            lens: [0; BATCH],
        }
    }

    /// Reads what the socket holds, up to `BATCH` datagrams, without
    /// blocking; WouldBlock when it holds none.
    fn recv(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.bufs[i].as_mut_ptr().cast(),
            iov_len: self.bufs[i].len(),
        });
        // SAFETY: mmsghdr is plain data; the pointers set below stay valid
        // for the call (they point into `self` and `iovs`).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH initialised headers whose buffers
        // outlive the call; MSG_DONTWAIT keeps it from blocking.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(n) {
            // A datagram longer than the buffer is cut; the relay drops
            // what does not parse.
            *len = (m.msg_len as usize).min(2048);
        }
        Ok(n)
    }

    /// Datagram `i` of the last batch and its source (`None`: not IP).
    fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i][..self.lens[i]], sockaddr(&self.addrs[i]))
    }
}

/// The source address `recvmmsg` wrote, IPv4-mapped IPv6 turned back into
/// IPv4 (the relay compares it with addresses from SDP).
fn sockaddr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in, which fits.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6, which fits.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                ip.to_canonical(),
                u16::from_be(v6.sin6_port),
            ))
        }
        _ => None,
    }
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
