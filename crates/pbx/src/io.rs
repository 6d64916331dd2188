//! The boundary between the sans-IO server core and the runtime that owns
//! sockets: what comes in, what goes out, and the clock readings passed in.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// A SIP transport. TLS and WebSocket take their place here later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Token used in Via and in `transport=` URI parameters.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Stream transports frame by Content-Length and retransmit nothing.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    pub fn parse(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.param())
    }
}

/// One end-to-end path: the transport, our local listener address and the
/// peer's address. For TCP the runtime maps `remote` to the connection the
/// peer opened (or opens one), so responses and in-dialog requests reuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Flow {
    /// Textual form stored with a registration, e.g. `udp:203.0.113.5:5060`.
    pub fn remote_string(&self) -> String {
        format!("{}:{}", self.transport, self.remote)
    }

    pub fn local_string(&self) -> String {
        format!("{}:{}", self.transport, self.local)
    }
}

/// Parses `udp:1.2.3.4:5060` / `tcp:[::1]:5060`.
pub fn parse_transport_addr(s: &str) -> Option<(Transport, SocketAddr)> {
    let (t, a) = s.split_once(':')?;
    Some((Transport::parse(t)?, a.parse().ok()?))
}

/// Bytes for the runtime to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub flow: Flow,
    pub data: Bytes,
}

/// The two clock readings the core needs: monotonic for timers, wall-clock
/// seconds for nonces and registration expiry (which must survive restarts).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix: u64,
}
