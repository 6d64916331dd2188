//! The server core without sockets (sans-IO): what one digest-authenticated
//! registration costs in CPU, from the first REGISTER to the 200 OK
//! (REGISTER -> 401, REGISTER with credentials -> store batch -> 200).
//! The same work the load benchmark measures per registration, minus the
//! kernel and the database.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pbx::io::{Flow, Now, Transport};
use pbx::{Core, CoreConfig, Metrics};
use sip::auth::{client_authorization, ha1, Algorithm, Challenge};
use sip::header::HeaderName;
use sip::parse::parse_datagram;
use sip::Limits;
use store::UserRecord;

const USERS: usize = 1000;
const REALM: &str = "bench.test";

fn core(now: Now) -> Core {
    let cfg = CoreConfig::new(
        REALM,
        vec![(Transport::Udp, "127.0.0.1:5060".parse().unwrap())],
        [7; 32],
    );
    let users = (0..USERS)
        .map(|i| {
            let name = format!("{}", 1000 + i);
            let pw = format!("pw{name}");
            UserRecord {
                ha1_md5: ha1(Algorithm::Md5, &name, REALM, &pw),
                ha1_sha256: ha1(Algorithm::Sha256, &name, REALM, &pw),
                username: name,
                display_name: None,
                created_at: 0,
            }
        })
        .collect();
    let mut registry = prometheus_client::registry::Registry::default();
    Core::new(
        cfg,
        users,
        Vec::new(),
        now,
        1,
        Arc::new(Metrics::new(&mut registry)),
    )
}

fn register(user: &str, seq: u64, auth: Option<&str>) -> Bytes {
    let mut s = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{seq}-{}\r\n\
Max-Forwards: 70\r\n\
From: <sip:{user}@{REALM}>;tag=t{seq}\r\n\
To: <sip:{user}@{REALM}>\r\n\
Call-ID: reg-{user}@127.0.0.1\r\n\
CSeq: {} REGISTER\r\n\
Contact: <sip:{user}@127.0.0.1:5090>\r\n\
Expires: 3600\r\n",
        u8::from(auth.is_some()),
        2 * seq + u64::from(auth.is_some()),
    );
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(s)
}

fn bench(c: &mut Criterion) {
    let start = Now {
        mono: Instant::now(),
        unix: 1_700_000_000,
    };
    let mut core = core(start);
    let flow = Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5061".parse().unwrap(),
    };
    let mut seq = 0u64;
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    // Only the core's calls are timed: the phone's side (reading the
    // challenge, hashing the response, formatting the request) is not.
    g.bench_function("register_with_digest", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                seq += 1;
                // Time moves as at 10 000 registrations/s: the replay
                // window's eviction works by issue time.
                let now = Now {
                    mono: start.mono + std::time::Duration::from_micros(seq * 100),
                    unix: start.unix + seq / 10_000,
                };
                let i = seq as usize % USERS;
                let user = format!("{}", 1000 + i);
                let first = register(&user, seq, None);
                let t = Instant::now();
                core.handle_input(now, flow, first);
                let challenge = core.poll_transmit().expect("401");
                spent += t.elapsed();
                let resp = parse_datagram(challenge.data, &Limits::default()).unwrap();
                assert_eq!(resp.status(), Some(401));
                let value = resp.header(HeaderName::WwwAuthenticate).unwrap();
                let ch = Challenge::parse(value).unwrap();
                let auth = client_authorization(
                    &ch,
                    "REGISTER",
                    &format!("sip:{REALM}"),
                    &user,
                    &format!("pw{user}"),
                    "cn0nce",
                    1,
                )
                .unwrap();
                let second = register(&user, seq, Some(&auth));
                let t = Instant::now();
                core.handle_input(now, flow, second);
                let Some(batch) = core.poll_store() else {
                    let t = core
                        .poll_transmit()
                        .map(|t| String::from_utf8_lossy(&t.data).into_owned());
                    panic!("no store batch; sent {t:?}");
                };
                core.store_done(now, batch.id, true);
                let ok = core.poll_transmit().expect("200");
                spent += t.elapsed();
                black_box(ok);
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
