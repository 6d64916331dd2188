//! The boundary between the sans-IO server core and the runtime that owns
//! sockets: what comes in, what goes out, and the clock readings passed in.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

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
        transport_addr_string(self.transport, self.remote)
    }

    pub fn local_string(&self) -> String {
        transport_addr_string(self.transport, self.local)
    }
}

/// `udp:1.2.3.4:5060` (what [`parse_transport_addr`] reads), IPv4 by hand:
/// every registration stores two of these, and `format!` costs more.
fn transport_addr_string(t: Transport, a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => {
            let mut s = String::with_capacity(26);
            s.push_str(t.param());
            s.push(':');
            sip::uri::Host::Ipv4(*v4.ip()).push_lower(&mut s);
            s.push(':');
            s.push_str(sip::message::decimal(u32::from(v4.port()), &mut [0; 10]));
            s
        }
        SocketAddr::V6(_) => format!("{t}:{a}"),
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
/// seconds for nonces, registration expiry and bans (which must survive
/// restarts). One type with the shield's.
pub use shield::Now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_addr_strings_round_trip() {
        for (t, a) in [
            (Transport::Udp, "192.0.2.4:5060"),
            (Transport::Tcp, "0.0.0.0:0"),
            (Transport::Udp, "255.255.255.255:65535"),
            (Transport::Tcp, "[2001:db8::1]:5061"),
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let s = transport_addr_string(t, a);
            assert_eq!(s, format!("{t}:{a}"));
            assert_eq!(parse_transport_addr(&s), Some((t, a)));
        }
    }
}
