//! Parse arbitrary datagrams; anything accepted must print, re-parse, and
//! keep its key fields. Every accessor is exercised so none can panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::header::{Contact, HeaderName};
use sip::message::Message;
use sip::parse::{
    error_response, frame_stream, is_keepalive, parse_datagram, parse_stream_message,
};
use sip::Limits;

fn touch(m: &Message) {
    let _ = (
        m.is_request(),
        m.method(),
        m.status(),
        m.reason(),
        m.version(),
    );
    let _ = m.request_uri().map(|u| u.to_string());
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.content_type(),
    );
    let _ = (m.from_tag(), m.to_tag(), m.body().len());
    if let Some(v) = m.top_via() {
        let _ = (
            v.branch(),
            v.received(),
            v.rport(),
            v.maddr(),
            v.ttl(),
            v.to_string(),
        );
    }
    for v in m.vias().flatten() {
        let _ = v.has_magic_cookie();
    }
    for c in m.contacts().flatten() {
        if let Contact::Addr(a) = c {
            let _ = (a.expires(), a.q(), a.tag(), a.to_string());
        }
    }
    for r in m.routes().chain(m.record_routes()).flatten() {
        let _ = r.uri.as_sip().map(|s| (s.lr(), s.transport(), s.maddr()));
    }
    for (name, value) in m.headers() {
        let _ = m.header_values(name).count();
        let _ = (m.header(name), m.header_count(name), value.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    // Stream framing must never panic and must agree with the parser.
    if let Ok(Some(n)) = frame_stream(data, &limits) {
        if !is_keepalive(&data[..n]) {
            let _ = parse_stream_message(Bytes::copy_from_slice(&data[..n]), &limits);
        }
    }
    let m = match parse_datagram(Bytes::copy_from_slice(data), &limits) {
        Ok(m) => m,
        Err(e) => {
            if let Some(reply) = error_response(data, &e, &limits) {
                // Copied lines may themselves be broken (best effort), but
                // the reply must be well framed: CRLF lines only, no header
                // injection, and the right status.
                let status = e.status().expect("only requests are answered");
                assert!(reply.starts_with(format!("SIP/2.0 {status} ").as_bytes()));
                assert!(reply.ends_with(b"Content-Length: 0\r\n\r\n"));
                for (i, &c) in reply.iter().enumerate() {
                    if c == b'\n' {
                        assert_eq!(reply[i - 1], b'\r');
                    }
                    if c == b'\r' {
                        assert_eq!(reply.get(i + 1), Some(&b'\n'));
                    }
                }
            }
            return;
        }
    };
    touch(&m);
    let printed = m.to_bytes();
    let again = parse_datagram(printed.clone(), &limits).unwrap_or_else(|e| {
        panic!(
            "re-parse failed: {e:?}\n{:?}",
            String::from_utf8_lossy(&printed)
        )
    });
    touch(&again);
    assert_eq!(m.is_request(), again.is_request());
    assert_eq!(m.method(), again.method());
    assert_eq!(m.status(), again.status());
    assert_eq!(m.request_uri_str(), again.request_uri_str());
    assert_eq!(m.call_id(), again.call_id());
    assert_eq!(m.cseq(), again.cseq());
    assert_eq!(m.from_tag(), again.from_tag());
    assert_eq!(m.to_tag(), again.to_tag());
    assert_eq!(m.max_forwards(), again.max_forwards());
    assert_eq!(m.body(), again.body());
    assert_eq!(m.vias().count(), again.vias().count());
    assert_eq!(
        m.top_via().map(|v| v.branch().map(str::to_owned)),
        again.top_via().map(|v| v.branch().map(str::to_owned))
    );
    // Printing is a fixed point after one round.
    assert_eq!(printed, again.to_bytes());
    // Responses built from an accepted request must parse too.
    if m.is_request() {
        let r = Message::response_to(&m, 400, "Bad")
            .to_tag("fz")
            .header(HeaderName::Server, "fuzz")
            .build()
            .expect("response builds");
        parse_datagram(r, &limits).expect("built response must parse");
    }
});
