//! Hot-path benchmarks: parse + typed access of a typical INVITE, a
//! REGISTER, and building a 401 with `ResponseBuilder`.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip::header::HeaderName;
use sip::message::Message;
use sip::parse::parse_datagram;
use sip::Limits;

const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=Session SDP\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0 8 97 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

fn invite() -> Bytes {
    let head = format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: hardline-bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{}",
        SDP.len(),
        SDP
    );
    Bytes::from(head)
}

fn register() -> Bytes {
    Bytes::from_static(
        b"REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>;expires=7200\r\n\
Expires: 7200\r\n\
Content-Length: 0\r\n\r\n",
    )
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let inv = invite();
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_invite_typed", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(inv.clone()), &limits).unwrap();
            black_box(m.top_via_branch());
            black_box(m.from_tag());
            black_box(m.to_tag());
            black_box(m.call_id());
            black_box(m.cseq().seq);
            black_box(m.max_forwards());
        })
    });
    g.bench_function("parse_invite_full_via", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(inv.clone()), &limits).unwrap();
            let via = m.top_via().unwrap();
            black_box(via.branch());
            black_box(via.rport());
            black_box(m.from_tag());
            black_box(m.to_tag());
            black_box(m.call_id());
            black_box(m.cseq().seq);
            black_box(m.max_forwards());
        })
    });
    let reg = register();
    g.bench_function("parse_register", |b| {
        b.iter(|| {
            let m = parse_datagram(black_box(reg.clone()), &limits).unwrap();
            black_box(m.contacts().count());
            black_box(m.expires());
        })
    });
    let req = parse_datagram(reg.clone(), &limits).unwrap();
    g.bench_function("print_response", |b| {
        b.iter(|| {
            let r = Message::response_to(black_box(&req), 401, "Unauthorized")
                .to_tag("a6c85cf")
                .header(
                    HeaderName::WwwAuthenticate,
                    "Digest realm=\"biloxi.example.com\", qop=\"auth\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=SHA-256",
                )
                .build()
                .unwrap();
            black_box(r);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
