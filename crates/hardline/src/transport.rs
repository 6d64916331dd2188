//! Sockets. UDP listeners feed datagrams to the core; TCP connections are
//! framed here (Content-Length, caps, idle close) and feed whole messages.
//! Everything the core emits is routed back by `Flow`: UDP by local socket,
//! TCP by the connection to `remote` (the one the peer opened, or a new one).

use crate::server::Runtime;
use bytes::{Buf, Bytes, BytesMut};
use pbx::io::{Flow, Transmit, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Once a connection has delivered a message it may idle this long (phones
/// keep registered TCP connections open between re-registrations).
const ESTABLISHED_IDLE: Duration = Duration::from_secs(900);
/// Messages queued for one connection's writer before we drop (a peer that
/// does not read must not make us buffer without bound).
const WRITE_QUEUE: usize = 256;

#[derive(Clone)]
struct Conn {
    tx: mpsc::Sender<Bytes>,
}

/// TCP connections by peer address, plus per-source counts for the caps.
#[derive(Default)]
pub struct ConnTable {
    by_remote: HashMap<SocketAddr, Conn>,
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

pub struct Transports {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_locals: Vec<SocketAddr>,
    conns: Mutex<ConnTable>,
}

impl Transports {
    pub fn new() -> Self {
        Transports {
            udp: Vec::new(),
            tcp_locals: Vec::new(),
            conns: Mutex::new(ConnTable::default()),
        }
    }

    pub fn add_udp(&mut self, local: SocketAddr, sock: Arc<UdpSocket>) {
        self.udp.push((local, sock));
    }

    pub fn add_tcp(&mut self, local: SocketAddr) {
        self.tcp_locals.push(local);
    }

    fn udp_socket(&self, local: SocketAddr, remote: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.udp
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| {
                self.udp
                    .iter()
                    .find(|(a, _)| a.is_ipv4() == remote.is_ipv4())
            })
            .map(|(_, s)| s)
    }
}

/// Sends what the core produced. UDP sends are non-blocking; a full socket
/// buffer drops the datagram (SIP retransmits), it never stalls the core.
pub fn send_all(rt: &Arc<Runtime>, out: Vec<Transmit>) {
    for t in out {
        match t.flow.transport {
            Transport::Udp => {
                let Some(sock) = rt.transports.udp_socket(t.flow.local, t.flow.remote) else {
                    warn!(remote = %t.flow.remote, "no UDP socket for destination family");
                    continue;
                };
                if let Err(e) = sock.try_send_to(&t.data, t.flow.remote) {
                    debug!(remote = %t.flow.remote, error = %e, "udp send failed");
                    rt.metrics_send_failed();
                }
            }
            Transport::Tcp => send_tcp(rt, t),
        }
    }
}

fn send_tcp(rt: &Arc<Runtime>, t: Transmit) {
    let existing = rt
        .transports
        .conns
        .lock()
        .ok()
        .and_then(|c| c.by_remote.get(&t.flow.remote).cloned());
    if let Some(conn) = existing {
        if conn.tx.try_send(t.data).is_err() {
            rt.metrics_send_failed();
        }
        return;
    }
    // No connection to that peer: open one (responses follow Via to the
    // peer's listening port when its connection has gone).
    let rt2 = rt.clone();
    tokio::spawn(async move {
        let remote = t.flow.remote;
        let connect = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(remote));
        match connect.await {
            Ok(Ok(stream)) => {
                let local = stream.local_addr().unwrap_or(t.flow.local);
                let flow_local = rt2
                    .transports
                    .tcp_locals
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == remote.is_ipv4())
                    .unwrap_or(local);
                if let Some(tx) = register_conn(&rt2, remote, stream, flow_local, false) {
                    let _ = tx.try_send(t.data);
                }
            }
            Ok(Err(e)) => {
                debug!(%remote, error = %e, "tcp connect failed");
                rt2.transport_error(Flow {
                    transport: Transport::Tcp,
                    local: t.flow.local,
                    remote,
                });
            }
            Err(_) => {
                debug!(%remote, "tcp connect timed out");
                rt2.transport_error(Flow {
                    transport: Transport::Tcp,
                    local: t.flow.local,
                    remote,
                });
            }
        }
    });
}

pub async fn udp_loop(rt: Arc<Runtime>, local: SocketAddr, sock: Arc<UdpSocket>) {
    let max = rt.limits().max_message_bytes.max(1500);
    // One receive buffer for the socket's lifetime; each datagram is copied
    // out at its exact size. Handing the parser a slice of a fresh
    // max-size buffer instead would pin 64 KB behind every message that a
    // transaction keeps.
    let mut buf = vec![0u8; max];
    loop {
        let res = sock.recv_from(&mut buf).await;
        match res {
            Ok((n, remote)) => {
                if n == 0 {
                    continue;
                }
                let data = Bytes::copy_from_slice(&buf[..n]);
                let flow = Flow {
                    transport: Transport::Udp,
                    local,
                    remote,
                };
                rt.input(flow, data);
            }
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux; not fatal.
                debug!(error = %e, "udp recv error");
            }
        }
    }
}

pub async fn tcp_accept_loop(rt: Arc<Runtime>, local: SocketAddr, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                // Banned, blocklisted or flooding: closed at once, unread.
                if !rt.admit_connection(remote) {
                    continue;
                }
                if register_conn(&rt, remote, stream, local, true).is_none() {
                    rt.metrics_conn_refused();
                }
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Admits a connection under the caps and starts its reader and writer.
fn register_conn(
    rt: &Arc<Runtime>,
    remote: SocketAddr,
    stream: TcpStream,
    local: SocketAddr,
    inbound: bool,
) -> Option<mpsc::Sender<Bytes>> {
    let limits = rt.limits();
    let (tx, rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    {
        let mut t = rt.transports.conns.lock().ok()?;
        let per = t.per_ip.get(&remote.ip()).copied().unwrap_or(0);
        if inbound
            && (t.total >= limits.max_connections || per >= limits.max_connections_per_source)
        {
            debug!(%remote, "tcp connection refused by limits");
            return None;
        }
        t.total += 1;
        *t.per_ip.entry(remote.ip()).or_insert(0) += 1;
        t.by_remote.insert(remote, Conn { tx: tx.clone() });
    }
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let rt_w = rt.clone();
    tokio::spawn(async move {
        writer(wr, rx).await;
        drop(rt_w);
    });
    let rt_r = rt.clone();
    let flow = Flow {
        transport: Transport::Tcp,
        local,
        remote,
    };
    let my_tx = tx.clone();
    tokio::spawn(async move {
        reader(&rt_r, rd, flow).await;
        unregister_conn(&rt_r, remote, &my_tx);
    });
    Some(tx)
}

fn unregister_conn(rt: &Arc<Runtime>, remote: SocketAddr, tx: &mpsc::Sender<Bytes>) {
    if let Ok(mut t) = rt.transports.conns.lock() {
        // Only remove our own entry: a newer connection may have replaced it.
        if t.by_remote
            .get(&remote)
            .is_some_and(|c| c.tx.same_channel(tx))
        {
            t.by_remote.remove(&remote);
        }
        t.total = t.total.saturating_sub(1);
        if let Some(n) = t.per_ip.get_mut(&remote.ip()) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&remote.ip());
            }
        }
    }
}

async fn writer(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(data) = rx.recv().await {
        if wr.write_all(&data).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn reader(rt: &Arc<Runtime>, mut rd: tokio::net::tcp::OwnedReadHalf, flow: Flow) {
    let limits = rt.limits();
    let incomplete_timeout = Duration::from_secs(limits.stream_idle_timeout_secs.max(1));
    let cap = limits.max_message_bytes;
    let mut buf = BytesMut::with_capacity(4096);
    // The deadline runs from the last completed message, not the last read,
    // so a peer trickling bytes cannot hold a connection open.
    let mut deadline = tokio::time::Instant::now() + incomplete_timeout;
    let mut crlf_run = 0usize;
    loop {
        let mut progressed = false;
        loop {
            match sip::parse::frame_stream(&buf, &limits) {
                Ok(Some(n)) => {
                    // Copied out at its exact size (see udp_loop).
                    let msg = Bytes::copy_from_slice(&buf[..n]);
                    buf.advance(n);
                    progressed = true;
                    if sip::parse::is_keepalive(&msg) {
                        // RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong.
                        // Counted across reads, since the four bytes may be
                        // split; a run never grows past one ping.
                        crlf_run += msg.len();
                        if crlf_run >= 4 {
                            crlf_run = 0;
                            rt.send(vec![Transmit {
                                flow,
                                data: Bytes::from_static(b"\r\n"),
                            }]);
                        }
                        continue;
                    }
                    crlf_run = 0;
                    rt.input(flow, msg);
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(remote = %flow.remote, error = %e, "tcp framing error, closing");
                    if let Some(resp) = sip::parse::error_response(&buf, &e, &limits) {
                        rt.send(vec![Transmit { flow, data: resp }]);
                    }
                    rt.metrics_drop("framing");
                    return;
                }
            }
        }
        if progressed {
            let now = tokio::time::Instant::now();
            deadline = now
                + if buf.is_empty() {
                    ESTABLISHED_IDLE
                } else {
                    incomplete_timeout
                };
        }
        if buf.len() >= cap {
            rt.metrics_drop("oversize");
            return;
        }
        let was_empty = buf.is_empty();
        buf.reserve(4096.min(cap - buf.len()).max(1));
        match tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => {
                if was_empty {
                    // A new message starts: it has the short budget to complete.
                    deadline = deadline.min(tokio::time::Instant::now() + incomplete_timeout);
                }
            }
            Ok(Err(_)) => return,
            Err(_) => {
                info!(remote = %flow.remote, "closing tcp connection: no complete message in time");
                rt.metrics_drop("idle");
                return;
            }
        }
    }
}
