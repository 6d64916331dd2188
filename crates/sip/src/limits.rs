//! Every resource cap of the server in one place, so an operator can see (and
//! tune) the whole attack surface at once. All parsing and transport code must
//! take its bounds from here rather than from local constants.

/// Caps applied to network input and server state. Defaults are chosen for a
/// registrar/proxy on a public network: generous enough for real SIP traffic
/// (RFC 4475 `longreq` fits), small enough that one peer cannot exhaust memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest SIP message accepted, start line + headers + body (default 65 535,
    /// the largest UDP payload).
    pub max_message_bytes: usize,
    /// Most header lines in one message (default 96).
    pub max_headers: usize,
    /// Longest single header line, folded continuations included (default 8192).
    pub max_header_bytes: usize,
    /// Largest body (default 32 768).
    pub max_body_bytes: usize,
    /// Most Via values in one message (default 64: RFC 4475 `longreq`, a
    /// valid message, carries 34).
    pub max_via: usize,
    /// Most Route values, and separately most Record-Route values (default 32).
    pub max_route: usize,
    /// Most Contact values in one message (default 16).
    pub max_contacts: usize,
    /// Longest URI, Request-URI included (default 2048).
    pub max_uri_bytes: usize,
    /// Most simultaneously open stream (TCP/TLS) connections (default 4096).
    pub max_connections: usize,
    /// Most simultaneously open stream connections from one source IP (default 32).
    pub max_connections_per_source: usize,
    /// A stream connection idle for this long is closed (default 30 s).
    pub stream_idle_timeout_secs: u64,
    /// Most received datagrams queued for processing at once; beyond this they
    /// are dropped rather than buffered (default 1024).
    pub max_udp_inflight: usize,
    /// Most live server + client transactions (default 65 536). Lingering
    /// ones (after their final response) are counted apart.
    pub max_transactions: usize,
    /// Most transactions lingering after their final response (Timers D, I,
    /// J, K, L, M: up to 32 s over UDP), on the server side and on the
    /// client side each (default 65 536; about 200 bytes each, plus the
    /// response a non-INVITE keeps to resend). When full, the one closest to
    /// its end goes: retransmissions are absorbed for a shorter time, calls
    /// are never refused for it.
    pub max_lingering: usize,
    /// Most bytes of responses (and ACKs) lingering transactions keep to
    /// resend, on each side (default 16 MiB); the same eviction applies.
    pub max_lingering_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_535,
            max_headers: 96,
            max_header_bytes: 8192,
            max_body_bytes: 32_768,
            max_via: 64,
            max_route: 32,
            max_contacts: 16,
            max_uri_bytes: 2048,
            max_connections: 4096,
            max_connections_per_source: 32,
            stream_idle_timeout_secs: 30,
            max_udp_inflight: 1024,
            max_transactions: 65_536,
            max_lingering: 65_536,
            max_lingering_bytes: 16 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let l = Limits::default();
        assert_eq!(l.max_message_bytes, 65_535);
        assert_eq!(l.max_headers, 96);
        assert_eq!(l.max_header_bytes, 8192);
        assert_eq!(l.max_body_bytes, 32_768);
        assert_eq!(l.max_via, 64);
        assert_eq!(l.max_route, 32);
        assert_eq!(l.max_contacts, 16);
        assert_eq!(l.max_uri_bytes, 2048);
        assert_eq!(l.max_connections, 4096);
        assert_eq!(l.max_connections_per_source, 32);
        assert_eq!(l.stream_idle_timeout_secs, 30);
    }
}
