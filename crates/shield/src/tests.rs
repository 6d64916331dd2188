//! The shield's decisions on whole scenarios, clock in hand.

use super::*;
use bytes::Bytes;
use std::time::Duration;

struct Clock {
    start: Instant,
    ms: u64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            ms: 0,
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: self.start + Duration::from_millis(self.ms),
            unix: 1_700_000_000 + self.ms / 1000,
        }
    }
    fn advance(&mut self, ms: u64) {
        self.ms += ms;
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn shield(cfg: ShieldConfig, c: &Clock) -> Shield {
    let mut s = Shield::new(cfg, &[], "example.test", c.now());
    s.set_extensions(10);
    s
}

fn request(method: &str, ruri: &str, to_user: &str, ua: &str, extra: &str) -> Message {
    let text = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nTo: <sip:{to_user}@example.test>\r\nFrom: <sip:{to_user}@example.test>;tag=1\r\nCall-ID: {n}@x\r\nCSeq: 1 {method}\r\nUser-Agent: {ua}\r\n{extra}Content-Length: 0\r\n\r\n",
        n = rand_id()
    );
    sip::parse::parse_datagram(Bytes::from(text), &sip::Limits::default()).unwrap()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn drain(s: &mut Shield) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn packet_flood_bans_and_trusted_never() {
    let mut c = Clock::new();
    let cfg = ShieldConfig {
        trusted: vec!["192.0.2.0/24".parse().unwrap()],
        ..Default::default()
    };
    let mut s = shield(cfg, &c);
    let attacker = ip("203.0.113.9");
    let mut passed = 0;
    for _ in 0..10_000 {
        match s.admit(c.now(), attacker) {
            Decision::Pass => passed += 1,
            Decision::Drop(_) => {}
            Decision::Trusted => panic!(),
        }
        c.advance(1);
    }
    // The burst (60) plus the refill while it lasted, then nothing.
    assert!(passed <= 61, "{passed}");
    assert_eq!(
        s.admit(c.now(), attacker),
        Decision::Drop(DropReason::Banned)
    );
    let ev = drain(&mut s);
    assert!(matches!(&ev[0], Event::Banned(b) if b.rule == Rule::Flood && b.offense == 1));
    assert_eq!(ev.len(), 1, "one ban, not one per packet");
    // A trusted load generator at any rate.
    for _ in 0..10_000 {
        assert_eq!(s.admit(c.now(), ip("192.0.2.50")), Decision::Trusted);
    }
    // A phone at a normal rate is never touched.
    for _ in 0..600 {
        assert_eq!(s.admit(c.now(), ip("198.51.100.20")), Decision::Pass);
        c.advance(500);
    }
}

#[test]
fn bans_expire_and_repeat_offenders_stay_longer() {
    let mut c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let a = ip("203.0.113.9");
    let key = SourceKey::of(a);
    while s.admit(c.now(), a) == Decision::Pass {}
    let first = s.explain(c.now(), key).ban.unwrap();
    assert_eq!(first.until, Some(first.since + 3600));
    c.advance(3_600_000);
    s.handle_timeout(c.now());
    assert!(drain(&mut s).iter().any(|e| matches!(
        e,
        Event::Unbanned {
            why: Unban::Expired,
            ..
        }
    )));
    assert_eq!(s.admit(c.now(), a), Decision::Pass);
    while s.admit(c.now(), a) == Decision::Pass {}
    let second = s.explain(c.now(), key).ban.unwrap();
    assert_eq!(second.offense, 2);
    assert_eq!(second.until, Some(second.since + 4 * 3600));
}

#[test]
fn scanner_signature_is_banned_without_reply() {
    let c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let m = request(
        "OPTIONS",
        "sip:100@192.0.2.1",
        "100",
        "friendly-scanner",
        "",
    );
    assert_eq!(
        s.inspect(c.now(), ip("203.0.113.5"), &m),
        Decision::Drop(DropReason::Rule(Rule::Scanner))
    );
    let b = s
        .explain(c.now(), SourceKey::of(ip("203.0.113.5")))
        .ban
        .unwrap();
    assert!(b.evidence.contains("friendly-scanner"), "{}", b.evidence);
    // Signatures off: passes.
    let mut cfg = ShieldConfig::default();
    cfg.scan.signatures = false;
    let mut s = shield(cfg, &c);
    assert_eq!(s.inspect(c.now(), ip("203.0.113.5"), &m), Decision::Pass);
}

#[test]
fn enumeration_with_a_normal_user_agent_is_caught() {
    let mut c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let src = ip("203.0.113.77");
    let mut verdict = Decision::Pass;
    let mut asked = 0;
    for ext in 100..200 {
        let m = request(
            "REGISTER",
            "sip:example.test",
            &ext.to_string(),
            "Yealink SIP-T46S",
            "",
        );
        verdict = s.inspect(c.now(), src, &m);
        asked += 1;
        if verdict.is_drop() {
            break;
        }
        c.advance(100);
    }
    assert_eq!(verdict, Decision::Drop(DropReason::Rule(Rule::Enumeration)));
    // About 30 (scan.distinct_users): the count is an estimate.
    assert!((26..=36).contains(&asked), "{asked}");
}

#[test]
fn an_office_of_20_phones_registers_without_trouble() {
    let mut c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let office = ip("198.51.100.200");
    // Cold start: every phone's first REGISTER (no credentials) at once,
    // then the authenticated ones; refreshes every 60 s for an hour, with
    // one phone on a wrong password all along.
    for round in 0..60 {
        for phone in 0..20 {
            let user = format!("10{phone:02}");
            for with_auth in [false, true] {
                assert_eq!(s.admit(c.now(), office), Decision::Pass, "round {round}");
                let extra = if with_auth {
                    "Authorization: Digest username=\"x\"\r\n"
                } else {
                    ""
                };
                let m = request("REGISTER", "sip:example.test", &user, "Yealink", extra);
                assert_eq!(
                    s.inspect(c.now(), office, &m),
                    Decision::Pass,
                    "round {round} {user}"
                );
                if with_auth {
                    if phone == 7 {
                        s.auth_failed(c.now(), office, &user, true);
                    } else {
                        s.auth_ok(c.now(), office, &user);
                    }
                }
            }
            c.advance(10);
        }
        c.advance(60_000 - 200);
    }
    assert_eq!(s.ban_count(), 0);
    let ev = drain(&mut s);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::UserBlocked { user, .. } if user == "1007")));
    assert!(!ev.iter().any(|e| matches!(e, Event::Banned(_))));
    assert!(!s.auth_allowed(c.now(), office, "1007"));
    assert!(s.auth_allowed(c.now(), office, "1008"));
    // Its password fixed, the phone is let in once the block ends (the
    // server does not count attempts it held back).
    c.advance(3_600_000);
    assert!(s.auth_allowed(c.now(), office, "1007"));
}

#[test]
fn slow_guesser_is_banned_after_maxretry() {
    let mut c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let g = ip("203.0.113.66");
    for i in 0..5 {
        assert_eq!(s.admit(c.now(), g), Decision::Pass, "guess {i}");
        s.auth_failed(c.now(), g, "1000", true);
        c.advance(2000);
    }
    assert_eq!(s.admit(c.now(), g), Decision::Drop(DropReason::Banned));
    let b = s.explain(c.now(), SourceKey::of(g)).ban.unwrap();
    assert_eq!(b.rule, Rule::AuthFailure);
    assert!(b.evidence.contains("5 wrong credentials"), "{}", b.evidence);
}

#[test]
fn distributed_guessing_spares_the_real_user() {
    let mut c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let home = ip("198.51.100.10");
    s.auth_ok(c.now(), home, "1000");
    for src in 0..10 {
        let a = ip(&format!("203.0.113.{}", 100 + src));
        for _ in 0..3 {
            assert!(s.admit(c.now(), a) == Decision::Pass);
            s.auth_failed(c.now(), a, "1000", true);
            c.advance(500);
        }
    }
    assert_eq!(s.ban_count(), 0, "3 guesses each stay under maxretry");
    assert!(s.account_throttled(c.now(), "1000").is_some());
    assert!(!s.auth_allowed(c.now(), ip("203.0.113.200"), "1000"));
    assert!(s.auth_allowed(c.now(), home, "1000"));
    assert!(drain(&mut s)
        .iter()
        .any(|e| matches!(e, Event::AccountThrottled { user, .. } if user == "1000")));
}

#[test]
fn register_and_invite_rates_scale_with_extensions() {
    let c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    s.set_extensions(10);
    let src = ip("203.0.113.8");
    let mut n = 0;
    loop {
        let m = request(
            "INVITE",
            "sip:1000@example.test",
            "1000",
            "x",
            "Proxy-Authorization: Digest username=\"1001\"\r\n",
        );
        n += 1;
        if s.inspect(c.now(), src, &m).is_drop() {
            break;
        }
        assert!(n < 1000);
    }
    // 20 + 2 per extension.
    assert_eq!(n, 41);
}

#[test]
fn manual_bans_trust_and_restore() {
    let c = Clock::new();
    let mut s = shield(ShieldConfig::default(), &c);
    let k: SourceKey = "203.0.113.1".parse().unwrap();
    let b = s.ban_manual(c.now(), k, "seen in the logs", None).unwrap();
    assert_eq!(b.until, None);
    assert_eq!(
        s.admit(c.now(), ip("203.0.113.1")),
        Decision::Drop(DropReason::Banned)
    );
    // Trusting lifts it at once.
    s.set_extra_trusted(vec!["203.0.113.0/24".parse().unwrap()], c.now());
    assert_eq!(s.admit(c.now(), ip("203.0.113.1")), Decision::Trusted);
    assert!(drain(&mut s).iter().any(|e| matches!(
        e,
        Event::Unbanned {
            why: Unban::Trusted,
            ..
        }
    )));
    assert!(matches!(
        s.ban_manual(c.now(), k, "", Some(60)),
        Err(ShieldError::Trusted(_))
    ));
    // Restore skips expired and trusted bans.
    s.set_extra_trusted(Vec::new(), c.now());
    let stored = vec![
        Ban {
            source: k,
            rule: Rule::Flood,
            evidence: String::new(),
            since: 0,
            until: Some(c.now().unix + 10),
            offense: 1,
        },
        Ban {
            source: "203.0.113.2".parse().unwrap(),
            rule: Rule::Flood,
            evidence: String::new(),
            since: 0,
            until: Some(1),
            offense: 1,
        },
    ];
    assert_eq!(s.restore(c.now(), stored), 1);
    assert_eq!(
        s.admit(c.now(), ip("203.0.113.1")),
        Decision::Drop(DropReason::Banned)
    );
    assert!(s.unban(k).is_some());
    assert_eq!(s.admit(c.now(), ip("203.0.113.1")), Decision::Pass);
}

#[test]
fn blocklist_and_countries_drop_without_ban() {
    let c = Clock::new();
    let cfg = ShieldConfig {
        blocklist: vec!["198.18.0.0/15".parse().unwrap()],
        ..Default::default()
    };
    let zone = net::parse_zone("203.0.113.0/24\n2001:db8:bad::/48\n").unwrap();
    let mut s = Shield::new(cfg, &zone, "example.test", c.now());
    assert_eq!(
        s.admit(c.now(), ip("198.19.1.1")),
        Decision::Drop(DropReason::Blocklist)
    );
    assert_eq!(
        s.admit(c.now(), ip("203.0.113.4")),
        Decision::Drop(DropReason::Blocklist)
    );
    assert_eq!(
        s.admit(c.now(), ip("2001:db8:bad:1::1")),
        Decision::Drop(DropReason::Blocklist)
    );
    assert_eq!(s.admit(c.now(), ip("2001:db8:beef::1")), Decision::Pass);
    assert_eq!(s.ban_count(), 0);
}

#[test]
fn disabled_shield_decides_nothing() {
    let c = Clock::new();
    let cfg = ShieldConfig {
        enabled: false,
        ..Default::default()
    };
    let mut s = shield(cfg, &c);
    for _ in 0..1000 {
        assert_eq!(s.admit(c.now(), ip("203.0.113.9")), Decision::Pass);
    }
    let m = request(
        "OPTIONS",
        "sip:100@192.0.2.1",
        "100",
        "friendly-scanner",
        "",
    );
    assert_eq!(s.inspect(c.now(), ip("203.0.113.9"), &m), Decision::Pass);
}
