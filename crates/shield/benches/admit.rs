//! The admission path: what the shield costs per packet before any parsing.
//! A banned source (dropped), a source within its rate (passed), a trusted
//! source, and a spoofed flood (a new source per packet, so the fixed-size
//! table evicts on every packet).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shield::{Now, Shield, ShieldConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let start = Instant::now();
    let now = |ms: u64| Now {
        mono: start + Duration::from_millis(ms),
        unix: 1_700_000_000 + ms / 1000,
    };
    let cfg = ShieldConfig {
        trusted: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    };
    let mut s = Shield::new(cfg, &[], "example.test", now(0));
    let banned = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    while !s.admit(now(0), banned).is_drop() {}
    while s.poll_event().is_some() {}
    let mut g = c.benchmark_group("shield");
    g.throughput(Throughput::Elements(1));
    g.bench_function("admit_banned", |b| {
        b.iter(|| black_box(s.admit(now(1), black_box(banned))))
    });
    let trusted = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    g.bench_function("admit_trusted", |b| {
        b.iter(|| black_box(s.admit(now(1), black_box(trusted))))
    });
    // A phone at a steady rate: the clock moves 100 ms a packet.
    let phone = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20));
    let mut ms = 1_000u64;
    g.bench_function("admit_passing", |b| {
        b.iter(|| {
            ms += 100;
            black_box(s.admit(now(ms), black_box(phone)))
        })
    });
    let mut n = 0u32;
    g.bench_function("admit_spoofed_flood", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)));
            black_box(s.admit(now(ms), black_box(ip)))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
