//! Routing helpers: is a URI ours, loop detection, our Record-Route and its
//! MAC, next-hop resolution. No DNS here: next hops must be IP literals or
//! registered contacts (the core has no resolver yet).

use crate::core::CoreConfig;
use crate::io::Transport;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip::header::{HeaderName, Via};
use sip::message::Message;
use sip::uri::{Host, Uri};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// Our branch prefix: the magic cookie, then a loop-detection hash.
pub const BRANCH_PREFIX: &str = "z9hG4bKhl";

pub fn host_str(h: &Host<'_>) -> String {
    let mut s = String::with_capacity(24);
    h.push_lower(&mut s);
    s
}

fn host_ip(h: &Host<'_>) -> Option<IpAddr> {
    match h {
        Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    }
}

/// Whether host[:port] names this server: the domain, or one of our
/// listening addresses (an unspecified listen address matches any IP).
pub fn is_our_host(cfg: &CoreConfig, host: &Host<'_>, port: Option<u16>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case(&cfg.domain),
        _ => {
            let Some(ip) = host_ip(host) else {
                return false;
            };
            let port = port.unwrap_or(5060);
            cfg.local_addrs
                .iter()
                .any(|(_, a)| a.port() == port && (a.ip() == ip || a.ip().is_unspecified()))
        }
    }
}

pub fn request_uri_is_local(cfg: &CoreConfig, msg: &Message) -> bool {
    match msg.request_uri() {
        Some(Uri::Sip(u)) => is_our_host(cfg, &u.host, u.port),
        Some(Uri::Tel(_)) => true,
        _ => false,
    }
}

/// The user part of the Request-URI (escapes decoded), or the tel number;
/// `None` for a SIP URI without a user.
pub fn ruri_user(msg: &Message) -> Option<String> {
    let uri = msg.request_uri()?;
    if uri
        .as_sip()
        .is_some_and(|u| u.user.is_none_or(str::is_empty))
    {
        return None;
    }
    uri.user_decoded()
}

/// RFC 3261 §16.6 step 8: a hash of what identifies the request at this
/// hop; the same request coming back with our Via is a loop, a spiral has a
/// new Request-URI and so another hash.
pub fn loop_hash(msg: &Message) -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    msg.request_uri_str().unwrap_or("").hash(&mut h);
    msg.from()
        .and_then(|f| f.tag().map(str::to_string))
        .hash(&mut h);
    msg.to()
        .and_then(|f| f.tag().map(str::to_string))
        .hash(&mut h);
    msg.call_id().hash(&mut h);
    msg.cseq().seq.hash(&mut h);
    for v in msg.header_values(HeaderName::ProxyRequire) {
        v.hash(&mut h);
    }
    h.finish() as u32
}

pub fn new_branch(msg: &Message, random: u64) -> String {
    format!("{BRANCH_PREFIX}{:08x}.{random:016x}", loop_hash(msg))
}

pub fn is_loop(cfg: &CoreConfig, msg: &Message) -> bool {
    let mut ours = msg
        .vias()
        .filter_map(Result::ok)
        .filter(|v| is_our_host(cfg, &v.host, v.port))
        .filter_map(|v| v.branch())
        .filter_map(|b| b.strip_prefix(BRANCH_PREFIX))
        .filter_map(|rest| rest.get(..8))
        .peekable();
    if ours.peek().is_none() {
        return false;
    }
    let mine = format!("{:08x}", loop_hash(msg));
    ours.any(|h| h == mine)
}

fn mac(cfg: &CoreConfig, call_id: &str) -> String {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(&cfg.secret).expect("HMAC takes any key length");
    m.update(b"record-route\0");
    m.update(call_id.as_bytes());
    let out = m.finalize().into_bytes();
    out[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Our Record-Route value for `local`, carrying a MAC of the Call-ID so that
/// only dialogs we record-routed can be relayed through us later.
pub fn record_route(
    cfg: &CoreConfig,
    call_id: &str,
    transport: Transport,
    local: SocketAddr,
) -> String {
    let host = match local.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    format!(
        "<sip:{host}:{};transport={};lr;hl={}>",
        local.port(),
        transport.param(),
        mac(cfg, call_id)
    )
}

fn route_is_ours(cfg: &CoreConfig, u: &Uri<'_>) -> bool {
    match u {
        Uri::Sip(s) => is_our_host(cfg, &s.host, s.port),
        _ => false,
    }
}

fn route_mac_ok(cfg: &CoreConfig, u: &Uri<'_>, call_id: &str) -> bool {
    match u {
        Uri::Sip(s) => s
            .params
            .get("hl")
            .flatten()
            .is_some_and(|v| constant_eq(v.as_bytes(), mac(cfg, call_id).as_bytes())),
        _ => false,
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What [`consume_own_routes`] found at the top of the route set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRoutes {
    /// No Route entry of ours.
    None,
    /// Only a pre-loaded route to us, as a phone configured with us as its
    /// outbound proxy sends (RFC 3261 §8.1.2): removed, and the request is
    /// handled as if it had come without it.
    Preloaded,
    /// A Record-Route of ours with a valid MAC: an in-dialog request of a
    /// dialog we record-routed, to be relayed along the rest of the set.
    Dialog,
}

/// Removes our own Route entries (RFC 3261 §16.4). `Err`: a Route names us
/// with a MAC parameter that is wrong (a forged route set: refuse).
pub fn consume_own_routes(cfg: &CoreConfig, msg: &mut Message) -> Result<OwnRoutes, ()> {
    let call_id = msg.call_id().to_string();
    // A strict router before us put our Record-Route URI in the Request-URI.
    let ruri_is_our_rr = match msg.request_uri() {
        Some(u @ Uri::Sip(s)) => route_is_ours(cfg, &u) && s.params.get("hl").is_some(),
        _ => false,
    };
    if ruri_is_our_rr {
        let ok = msg
            .request_uri()
            .is_some_and(|u| route_mac_ok(cfg, &u, &call_id));
        if !ok {
            return Err(());
        }
        let routes: Vec<String> = msg
            .header_values(HeaderName::Route)
            .map(str::to_string)
            .collect();
        let Some(last) = routes.last() else {
            return Err(());
        };
        let uri = strip_angle(last).to_string();
        msg.set_request_uri(&uri).map_err(|_| ())?;
        let keep = &routes[..routes.len() - 1];
        msg.remove_all(HeaderName::Route).map_err(|_| ())?;
        for r in keep {
            msg.append_header(HeaderName::Route, r).map_err(|_| ())?;
        }
        return Ok(OwnRoutes::Dialog);
    }
    let mut found = OwnRoutes::None;
    // Bounded: an outbound-proxy entry, then our two Record-Routes at most
    // (one per transport when we bridge UDP and TCP).
    for _ in 0..3 {
        let Some(first) = msg
            .header_values(HeaderName::Route)
            .next()
            .map(str::to_string)
        else {
            break;
        };
        let Ok(na) = sip::header::NameAddr::parse(&first) else {
            break;
        };
        if !route_is_ours(cfg, &na.uri) {
            break;
        }
        let has_mac = matches!(&na.uri, Uri::Sip(s) if s.params.get("hl").is_some());
        if has_mac {
            if !route_mac_ok(cfg, &na.uri, &call_id) {
                return Err(());
            }
            found = OwnRoutes::Dialog;
        } else if found == OwnRoutes::None {
            found = OwnRoutes::Preloaded;
        }
        msg.remove_first(HeaderName::Route).map_err(|_| ())?;
    }
    Ok(found)
}

fn strip_angle(s: &str) -> &str {
    let t = s.trim();
    match (t.find('<'), t.rfind('>')) {
        (Some(a), Some(b)) if a < b => &t[a + 1..b],
        _ => t,
    }
}

/// Resolves a SIP URI to a transport address without DNS.
pub fn resolve(u: &Uri<'_>) -> Option<(Transport, SocketAddr)> {
    let Uri::Sip(s) = u else {
        return None;
    };
    if s.secure {
        return None; // TLS is not served yet
    }
    let ip = host_ip(&s.host)?;
    let transport = match s.transport() {
        Some(t) => Transport::parse(t)?,
        None => Transport::Udp,
    };
    Some((transport, SocketAddr::new(ip, s.port.unwrap_or(5060))))
}

/// Our listener to send from for `transport` towards `remote`.
pub fn local_for(cfg: &CoreConfig, transport: Transport, remote: SocketAddr) -> Option<SocketAddr> {
    cfg.local_addrs
        .iter()
        .find(|(t, a)| *t == transport && a.is_ipv4() == remote.is_ipv4())
        .map(|(_, a)| *a)
}

/// Where a response goes according to its (new) top Via (RFC 3261 §18.2.2,
/// RFC 3581): received/rport when present, else sent-by.
pub fn via_destination(via: &Via<'_>) -> Option<(Transport, SocketAddr)> {
    let transport = Transport::parse(via.transport)?;
    let ip: IpAddr = match via.received() {
        Some(r) => r.parse().ok()?,
        None => host_ip(&via.host)?,
    };
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port.unwrap_or(5060),
    };
    Some((transport, SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip::parse::parse_datagram;
    use sip::Limits;

    fn cfg() -> CoreConfig {
        CoreConfig::new(
            "example.test",
            vec![(Transport::Udp, "127.0.0.1:5060".parse().unwrap())],
            [7; 32],
        )
    }

    fn bye(routes: &[&str]) -> Message {
        let mut s = String::from(
            "BYE sip:bob@192.0.2.9:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKx\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a\r\n\
             To: <sip:bob@example.test>;tag=b\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\n",
        );
        for r in routes {
            s.push_str(&format!("Route: {r}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    }

    fn our_rr(cfg: &CoreConfig, call_id: &str) -> String {
        format!("<sip:127.0.0.1:5060;lr;hl={}>", mac(cfg, call_id))
    }

    #[test]
    fn preloaded_outbound_route_is_removed_and_not_a_dialog() {
        let c = cfg();
        let mut m = bye(&["<sip:127.0.0.1:5060;lr>"]);
        assert_eq!(consume_own_routes(&c, &mut m), Ok(OwnRoutes::Preloaded));
        assert!(m.header(HeaderName::Route).is_none());
    }

    #[test]
    fn preloaded_route_then_foreign_hop_leaves_the_foreign_hop() {
        // The core refuses such a request as relaying: the foreign Route
        // must still be there for it to see.
        let c = cfg();
        let mut m = bye(&["<sip:127.0.0.1:5060;lr>", "<sip:198.51.100.1;lr>"]);
        assert_eq!(consume_own_routes(&c, &mut m), Ok(OwnRoutes::Preloaded));
        assert_eq!(m.header(HeaderName::Route), Some("<sip:198.51.100.1;lr>"));
    }

    #[test]
    fn record_route_with_valid_mac_is_a_dialog() {
        let c = cfg();
        let rr = our_rr(&c, "c1");
        let mut m = bye(&["<sip:127.0.0.1:5060;lr>", &rr]);
        assert_eq!(consume_own_routes(&c, &mut m), Ok(OwnRoutes::Dialog));
        assert!(m.header(HeaderName::Route).is_none());
    }

    #[test]
    fn record_route_with_wrong_mac_is_refused() {
        let c = cfg();
        let rr = our_rr(&c, "another-call");
        let mut m = bye(&[&rr]);
        assert_eq!(consume_own_routes(&c, &mut m), Err(()));
        let mut m = bye(&["<sip:127.0.0.1:5060;lr;hl=00>"]);
        assert_eq!(consume_own_routes(&c, &mut m), Err(()));
    }

    #[test]
    fn foreign_top_route_is_left_alone() {
        let c = cfg();
        let mut m = bye(&["<sip:198.51.100.1;lr>"]);
        assert_eq!(consume_own_routes(&c, &mut m), Ok(OwnRoutes::None));
        assert!(m.header(HeaderName::Route).is_some());
    }
}
