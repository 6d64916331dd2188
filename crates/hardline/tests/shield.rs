//! The shield against real attack tools and real load, each test in a
//! network namespace of its own, with hardline as root inside it so the
//! nftables sets are real. Attackers and users come from their own
//! loopback addresses (all of 127/8 is local). Every attack is bounded in
//! count and time. Needs root, `ip` (iproute2), `nft` (nftables), SIPp
//! (sip-tester) and sipvicious; a missing one fails the test.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// The shield's config for these tests: the defaults, nothing trusted
/// (the tests' own address 127.0.0.1 included) unless `extra` says so.
fn start(tag: &str, extra: &str) -> Server {
    let shield = if extra.contains("[shield]") {
        extra.to_string()
    } else {
        format!("[shield]\n{extra}")
    };
    Server::start(tag, &shield)
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

/// Throws away answers already queued on `sock` (to requests sent without
/// waiting, as a flooder does).
fn drain(sock: &UdpSocket) {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 65535];
    while sock.recv_from(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
}

/// Sends `msg` from `sock` and waits up to `wait` for an answer.
fn exchange(sock: &UdpSocket, server: SocketAddr, msg: &str, wait: Duration) -> Option<String> {
    sock.send_to(msg.as_bytes(), server).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 65535];
    sock.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn register_msg(sock: &UdpSocket, user: &str, n: u32, ua: &str, auth: Option<&str>) -> String {
    let local = sock.local_addr().unwrap();
    let mut m = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-s{n}-{}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=t{n}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: shield-{n}-{}@{}\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{local}>\r\nUser-Agent: {ua}\r\nExpires: 60\r\n",
        local.port(),
        local.port(),
        local.ip()
    );
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// One REGISTER with `password` for `user` from `sock`: challenge, then
/// credentials. The final status line, or `None` without an answer.
fn login(
    sock: &UdpSocket,
    server: SocketAddr,
    user: &str,
    password: &str,
    n: u32,
) -> Option<String> {
    let wait = Duration::from_millis(1500);
    let first = exchange(
        sock,
        server,
        &register_msg(sock, user, n, "Yealink SIP-T46S", None),
        wait,
    )?;
    let ch = challenges(&first);
    let parsed = sip::auth::Challenge::parse(ch.first()?).ok()?;
    let auth = sip::auth::client_authorization(
        &parsed,
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        user,
        password,
        &format!("cn{n}"),
        1,
    )
    .ok()?;
    let r = exchange(
        sock,
        server,
        &register_msg(sock, user, n + 1, "Yealink SIP-T46S", Some(&auth)),
        wait,
    )?;
    r.lines().next().map(str::to_string)
}

fn metric(s: &Server, name: &str, label: &str) -> u64 {
    s.metrics()
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn own_enumerator_slow_and_distributed_guessers() {
    let ns = Netns::enter("guess");
    let s = start("shield-guess", "");
    let server = s.addr();

    // An enumerator with a phone's User-Agent: REGISTER for 100 extensions.
    // Known and unknown users get the same answer (so it learns nothing),
    // and it is banned for asking about too many users.
    let e = UdpSocket::bind("127.0.0.10:0").unwrap();
    let mut answers = Vec::new();
    for (i, ext) in (1000..1100).enumerate() {
        let m = register_msg(&e, &ext.to_string(), i as u32, "Yealink SIP-T46S", None);
        match exchange(&e, server, &m, Duration::from_millis(300)) {
            Some(r) => answers.push(r.lines().next().unwrap_or("").to_string()),
            None => break,
        }
    }
    // 30 allowed (scan.distinct_users), the count an estimate within a few.
    assert!(
        answers.len() <= 36,
        "still answered after {} users",
        answers.len()
    );
    assert!(
        answers.iter().all(|a| a == "SIP/2.0 401 Unauthorized"),
        "{answers:?}"
    );
    wait_until("enumerator in the kernel set", 5, || {
        ns.banned_in_kernel("127.0.0.10")
    });

    // A slow guesser: one wrong password every 2 s, below every rate
    // limit, banned at maxretry (5).
    let g = UdpSocket::bind("127.0.0.11:0").unwrap();
    let mut tries = 0;
    for i in 0..8u32 {
        match login(&g, server, "1000", "wrong-guess-password", 10 * i) {
            Some(st) => {
                assert!(st.starts_with("SIP/2.0 401"), "{st}");
                tries += 1;
            }
            None => break,
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(tries, 5, "banned after exactly maxretry wrong passwords");
    wait_until("slow guesser in the kernel set", 5, || {
        ns.banned_in_kernel("127.0.0.11")
    });

    // Distributed guessing: 10 sources, 3 wrong passwords each, against
    // 1001, while its real user registers from its usual address.
    let home = UdpSocket::bind("127.0.0.20:0").unwrap();
    assert_eq!(
        login(&home, server, "1001", &password("1001"), 100).as_deref(),
        Some("SIP/2.0 200 OK")
    );
    for src in 0..10u32 {
        let a = UdpSocket::bind(format!("127.0.0.{}:0", 30 + src)).unwrap();
        for k in 0..3 {
            let st = login(
                &a,
                server,
                "1001",
                &format!("guess-{src}-{k}-password"),
                200 + 10 * k,
            );
            assert_eq!(
                st.as_deref(),
                Some("SIP/2.0 401 Unauthorized"),
                "source {src}"
            );
        }
        // The real user keeps working throughout.
        assert_eq!(
            login(&home, server, "1001", &password("1001"), 300 + 10 * src).as_deref(),
            Some("SIP/2.0 200 OK"),
            "the real user was locked out after source {src}"
        );
    }
    // Even the right password from a guessing source is refused now: the
    // account authenticates only from its known sources.
    let late = UdpSocket::bind("127.0.0.39:0").unwrap();
    assert_eq!(
        login(&late, server, "1001", &password("1001"), 500).as_deref(),
        Some("SIP/2.0 401 Unauthorized")
    );
    for src in 0..10 {
        assert!(
            !ns.banned_in_kernel(&format!("127.0.0.{}", 30 + src)),
            "3 guesses are below maxretry"
        );
    }
    assert!(
        s.log_text().contains("account throttled"),
        "{}",
        s.log_text()
    );

    // Explain the slow guesser's ban from the CLI.
    let out = s.cli(&["ban", "explain", "127.0.0.11"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("rule auth_failure") && text.contains("5 wrong credentials"),
        "{text}"
    );
}

#[test]
fn floods_are_cut_off_while_a_real_ua_keeps_calling() {
    let ns = Netns::enter("flood");
    // The real UA places 100 calls in 20 s from one extension (a busy
    // line): above the default toll-fraud brake of 10 calls a minute.
    let s = start(
        "shield-flood",
        "[shield]\n[shield.calls]\nper_minute = 600\nmax_concurrent = 20\n",
    );
    // The real users: 2000 answers calls at 127.0.0.60, 1000 calls from
    // 127.0.0.61; neither is trusted.
    let uas_port = free_port();
    register_from(
        &s,
        "127.0.0.60",
        "2000",
        &format!("127.0.0.60:{uas_port}"),
        "udp",
        "u1",
        300,
    );
    let uas = sipp_spawn_from(
        &s,
        "uas",
        "uas.xml",
        "u1",
        "127.0.0.60",
        uas_port,
        &["-m", "100"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let caller = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    let uac = sipp_spawn_from(
        &s,
        "uac",
        "uac_call.xml",
        "u1",
        "127.0.0.61",
        free_port(),
        &[
            "-inf",
            caller.to_str().unwrap(),
            "-m",
            "100",
            "-r",
            "5",
            "-l",
            "10",
        ],
    );
    // Meanwhile: a REGISTER flood and an INVITE flood, 3000 each at 1000/s.
    let reg_flood = sipp_spawn_from(
        &s,
        "flood-reg",
        "flood_register.xml",
        "u1",
        "127.0.0.50",
        free_port(),
        &["-s", DOMAIN, "-m", "3000", "-r", "1000"],
    );
    let inv_flood = sipp_spawn_from(
        &s,
        "flood-inv",
        "flood_invite.xml",
        "u1",
        "127.0.0.51",
        free_port(),
        &["-s", DOMAIN, "-m", "3000", "-r", "1000"],
    );
    reg_flood.expect_success(&s);
    inv_flood.expect_success(&s);
    uac.expect_success(&s);
    uas.expect_success(&s);
    assert!(ns.banned_in_kernel("127.0.0.50"), "{}", ns.set("ban4"));
    assert!(ns.banned_in_kernel("127.0.0.51"));
    assert!(!ns.banned_in_kernel("127.0.0.60") && !ns.banned_in_kernel("127.0.0.61"));
    // Cut off within a bounded number: the burst, not the 6000 sent.
    let seen = metric(&s, "hardline_sip_requests_total", "REGISTER")
        + metric(&s, "hardline_sip_requests_total", "INVITE");
    assert!(seen < 400, "the server handled {seen} requests");
    // The per-minute caps (REGISTER 20 + 4 per extension, INVITE 20 + 2)
    // come before the packet rate here.
    assert_eq!(
        metric(&s, "hardline_shield_bans_total", "rule=\"register_flood\""),
        1
    );
    assert_eq!(
        metric(&s, "hardline_shield_bans_total", "rule=\"invite_flood\""),
        1
    );
}

#[test]
fn an_office_behind_one_address_and_a_trusted_source() {
    let ns = Netns::enter("office");
    let s = start("shield-office", "trusted = [\"127.0.0.80\"]\n");
    let server = s.addr();
    // 20 phones behind 127.0.0.70, one with a wrong password, for 8 rounds.
    let phones: Vec<(UdpSocket, String)> = (0..20)
        .map(|i| {
            (
                UdpSocket::bind("127.0.0.70:0").unwrap(),
                format!("{}", [1000, 1001, 1002, 2000][i % 4]),
            )
        })
        .collect();
    for round in 0..8u32 {
        for (i, (sock, user)) in phones.iter().enumerate() {
            let pw = if i == 7 {
                "misconfigured-password".to_string()
            } else {
                password(user)
            };
            let st = login(sock, server, user, &pw, 1000 * round + 10 * i as u32);
            let want = if i == 7 {
                "SIP/2.0 401 Unauthorized"
            } else {
                "SIP/2.0 200 OK"
            };
            assert_eq!(st.as_deref(), Some(want), "round {round} phone {i}");
        }
    }
    assert!(!ns.banned_in_kernel("127.0.0.70"), "the office was banned");

    // A trusted source may flood, scan and fail as it likes.
    let t = UdpSocket::bind("127.0.0.80:0").unwrap();
    for i in 0..500u32 {
        let m = register_msg(&t, "1000", i, "friendly-scanner", None);
        t.send_to(m.as_bytes(), server).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    drain(&t);
    for i in 0..10u32 {
        login(&t, server, "1000", "wrong-password-xx", 10_000 + 10 * i);
    }
    assert_eq!(
        login(&t, server, "1000", &password("1000"), 20_000).as_deref(),
        Some("SIP/2.0 200 OK")
    );
    assert!(!ns.banned_in_kernel("127.0.0.80"));
}

#[test]
fn bans_survive_restart_and_operators_manage_them() {
    let ns = Netns::enter("ops");
    let mut s = start("shield-ops", "");
    let server = s.addr();
    // A flood gets 127.0.0.90 banned.
    let f = UdpSocket::bind("127.0.0.90:0").unwrap();
    for i in 0..200u32 {
        let m = register_msg(&f, "1000", i, "Yealink", None);
        f.send_to(m.as_bytes(), server).unwrap();
    }
    wait_until("flooder banned", 5, || ns.banned_in_kernel("127.0.0.90"));
    // A manual ban, through the CLI and the running server.
    let out = s.cli(&["ban", "add", "127.0.0.91", "--reason", "seen in the logs"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("manual ban applied", 10, || {
        ns.banned_in_kernel("127.0.0.91")
    });
    let list = String::from_utf8_lossy(&s.cli(&["ban", "list"]).stdout).into_owned();
    assert!(
        list.contains("127.0.0.90") && list.contains("flood"),
        "{list}"
    );
    assert!(
        list.contains("127.0.0.91") && list.contains("manual"),
        "{list}"
    );

    // Restart: the bans come back into the kernel from the store.
    assert!(s.stop());
    let _ = Command::new("nft")
        .args(["flush", "set", "inet", "hardline", "ban4"])
        .status();
    assert!(!ns.banned_in_kernel("127.0.0.90"));
    s.spawn();
    wait_until("bans restored", 5, || {
        ns.banned_in_kernel("127.0.0.90") && ns.banned_in_kernel("127.0.0.91")
    });
    // In-process too: without the kernel set, still no answer.
    let _ = Command::new("nft")
        .args(["flush", "set", "inet", "hardline", "ban4"])
        .status();
    drain(&f);
    let m = register_msg(&f, "1000", 999, "Yealink", None);
    assert!(exchange(&f, server, &m, Duration::from_millis(500)).is_none());

    // Remove one, trust the other: both are answered again.
    assert!(s.cli(&["ban", "remove", "127.0.0.91"]).status.success());
    assert!(s
        .cli(&["trust", "add", "127.0.0.90", "--note", "our test box"])
        .status
        .success());
    let g = UdpSocket::bind("127.0.0.91:0").unwrap();
    wait_until("unbanned and trusted", 10, || {
        let a = exchange(
            &f,
            server,
            &register_msg(&f, "1000", 7, "Yealink", None),
            Duration::from_millis(300),
        );
        let b = exchange(
            &g,
            server,
            &register_msg(&g, "1000", 8, "Yealink", None),
            Duration::from_millis(300),
        );
        a.is_some() && b.is_some()
    });
    let trust = String::from_utf8_lossy(&s.cli(&["trust", "list"]).stdout).into_owned();
    assert!(
        trust.contains("127.0.0.90") && trust.contains("our test box"),
        "{trust}"
    );
    let explain =
        String::from_utf8_lossy(&s.cli(&["ban", "explain", "127.0.0.90"]).stdout).into_owned();
    assert!(
        explain.contains("trusted: yes") && explain.contains("unbanned:trusted"),
        "{explain}"
    );
}

/// Runs a sipvicious tool (bounded by `timeout`) and returns its output.
fn sipvicious(tool: &str, args: &[&str]) -> String {
    require_tool(tool, "sipvicious");
    let out = Command::new("timeout")
        .arg("60")
        .arg(tool)
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sipvicious_finds_nothing_cracks_nothing_and_ends_up_in_the_kernel() {
    let ns = Netns::enter("sipvicious");
    // 3000 has a weak password ("1234", set by its hashes: the config
    // refuses short passwords but cannot judge hashes).
    let md5 = sip::auth::ha1(sip::auth::Algorithm::Md5, "3000", DOMAIN, "1234");
    let sha = sip::auth::ha1(sip::auth::Algorithm::Sha256, "3000", DOMAIN, "1234");
    let s = start(
        "shield-sipvicious",
        &format!("[shield]\n\n[[extensions]]\nuser = \"3000\"\nha1_md5 = \"{md5}\"\nha1_sha256 = \"{sha}\"\n"),
    );
    let port = s.port.to_string();

    // svmap: no answer, so no SIP device found.
    let map = sipvicious("svmap", &["-b", "127.0.0.2", "-p", &port, "127.0.0.1"]);
    assert!(
        !map.contains(&format!("127.0.0.1:{port}")),
        "svmap found the server:\n{map}"
    );
    wait_until("svmap in the kernel set", 5, || {
        ns.banned_in_kernel("127.0.0.2")
    });

    // svwar over 100 extensions (the real ones among them), REGISTER and
    // INVITE: nothing found.
    for (ip, method) in [("127.0.0.3", "REGISTER"), ("127.0.0.4", "INVITE")] {
        ns.default_source(ip);
        let war = sipvicious(
            "svwar",
            &[
                "-b",
                ip,
                "-p",
                &port,
                "-m",
                method,
                "-e",
                "950-1049,2000,3000",
                "--domain",
                DOMAIN,
                "--maximumtime",
                "5",
                "127.0.0.1",
            ],
        );
        for ext in ["1000", "1001", "1002", "2000", "3000"] {
            assert!(
                !war.lines()
                    .any(|l| l.contains('|') && l.split('|').any(|c| c.trim() == ext)),
                "svwar {method} found {ext}:\n{war}"
            );
        }
        wait_until("svwar in the kernel set", 5, || ns.banned_in_kernel(ip));
    }

    // svcrack against 3000 with a list holding its password: not cracked.
    let words = s.dir.join("words.txt");
    std::fs::write(&words, "0000\n1111\n123\n12345\n1234\n3000\npassword\n").unwrap();
    ns.default_source("127.0.0.5");
    let crack = sipvicious(
        "svcrack",
        &[
            "-b",
            "127.0.0.5",
            "-p",
            &port,
            "-u",
            "3000",
            "-d",
            words.to_str().unwrap(),
            "--domain",
            DOMAIN,
            "--maximumtime",
            "5",
            "127.0.0.1",
        ],
    );
    assert!(!crack.contains("1234 "), "svcrack:\n{crack}");
    assert!(
        !crack.lines().any(|l| l.contains('|') && l.contains("1234")),
        "cracked:\n{crack}"
    );
    wait_until("svcrack in the kernel set", 5, || {
        ns.banned_in_kernel("127.0.0.5")
    });

    // Each was banned as a scanner, with the signature as evidence.
    let out = s.cli(&["ban", "explain", "127.0.0.5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rule scanner") && text.contains("friendly-scanner"),
        "{text}"
    );
    // The server still serves its users.
    let me = UdpSocket::bind("127.0.0.9:0").unwrap();
    assert_eq!(
        login(&me, s.addr(), "1000", &password("1000"), 1).as_deref(),
        Some("SIP/2.0 200 OK")
    );
}

#[test]
fn blocked_countries_come_from_zone_files() {
    let _ns = Netns::enter("zones");
    // An unreadable zone file stops check-config (and start-up), naming it.
    let dir = temp_dir("zones-missing");
    let cfg = dir.join("hardline.toml");
    std::fs::write(
        &cfg,
        format!("[sip]\nlisten = [\"udp:127.0.0.1:{}\"]\ndomain = \"{DOMAIN}\"\n[shield]\nblocked_countries = [\"xx\"]\n", free_port()),
    )
    .unwrap();
    let out = check_config(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("xx.zone"), "{err}");

    // With the file, its prefixes get no answer; others do.
    let mut s = start_with_zone("shield-zones", "# test zone\n127.0.0.77/32\n");
    let blocked = UdpSocket::bind("127.0.0.77:0").unwrap();
    let other = UdpSocket::bind("127.0.0.78:0").unwrap();
    let m = register_msg(&blocked, "1000", 1, "Yealink", None);
    assert!(exchange(&blocked, s.addr(), &m, Duration::from_millis(500)).is_none());
    let m = register_msg(&other, "1000", 1, "Yealink", None);
    assert!(exchange(&other, s.addr(), &m, Duration::from_millis(1500)).is_some());
    assert!(s.metrics().contains("reason=\"blocklist\""));
    assert!(s.stop());
}

/// A server blocking country "xx", whose zone file holds `zone`.
fn start_with_zone(tag: &str, zone: &str) -> Server {
    let dir = temp_dir(&format!("{tag}-zones"));
    std::fs::write(dir.join("xx.zone"), zone).unwrap();
    start(
        tag,
        &format!(
            "[shield]\nblocked_countries = [\"xx\"]\nzone_dir = \"{}\"\n",
            dir.display()
        ),
    )
}

/// An INVITE from `sock` for `target`, with credentials of `from_user` when
/// `auth` is given (answering `challenge`, a 407).
fn invite_msg(
    sock: &UdpSocket,
    from: &str,
    target: &str,
    call: &str,
    auth: Option<&str>,
) -> String {
    let local = sock.local_addr().unwrap();
    let mut m = format!(
        "INVITE sip:{target}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call}-{}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=f-{call}\r\nTo: <sip:{target}@{DOMAIN}>\r\nCall-ID: {call}\r\nCSeq: {} INVITE\r\nContact: <sip:x@{local}>\r\n",
        u8::from(auth.is_some()),
        1 + u8::from(auth.is_some()),
    );
    if let Some(a) = auth {
        m.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// The first line of the first answer other than 100 Trying, and whether a
/// 100 Trying came first (the call was forwarded).
fn call_answer(sock: &UdpSocket, server: SocketAddr, msg: &str) -> (bool, String) {
    sock.send_to(msg.as_bytes(), server).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut trying = false;
    let mut buf = [0u8; 65535];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        let line = r.lines().next().unwrap_or("").to_string();
        if line.starts_with("SIP/2.0 100") {
            trying = true;
            continue;
        }
        return (trying, r);
    }
    (trying, String::new())
}

/// An authenticated INVITE from 1000 to 2000: the answer after the 407.
fn authed_call(sock: &UdpSocket, server: SocketAddr, call: &str) -> (bool, String) {
    let (_, challenge) = call_answer(
        sock,
        server,
        &invite_msg(sock, &format!("1000@{DOMAIN}"), "2000", call, None),
    );
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    let auth = answer_challenge(
        &challenge,
        "Proxy-Authenticate",
        "INVITE",
        &format!("sip:2000@{DOMAIN}"),
        "1000",
        call,
    );
    call_answer(
        sock,
        server,
        &invite_msg(sock, &format!("1000@{DOMAIN}"), "2000", call, Some(&auth)),
    )
}

#[test]
fn per_extension_call_limits_and_public_aliases() {
    let _ns = Netns::enter("calls");
    let s = start(
        "shield-calls",
        "[shield]\n[shield.calls]\nmax_concurrent = 2\nper_minute = 3\npublic_aliases = { sales = \"2000\" }\n",
    );
    let server = s.addr();
    // 2000's phone: registered, never answers (calls stay ringing).
    let callee = UdpSocket::bind("127.0.0.40:0").unwrap();
    let phone = UdpSocket::bind("127.0.0.41:0").unwrap();
    let contact = callee.local_addr().unwrap().to_string();
    register_from(&s, "127.0.0.41", "2000", &contact, "udp", "u1", 300);
    drop(phone);

    let caller = UdpSocket::bind("127.0.0.42:0").unwrap();
    assert!(
        authed_call(&caller, server, "lim-1").0,
        "first call forwarded"
    );
    assert!(
        authed_call(&caller, server, "lim-2").0,
        "second call forwarded"
    );
    let (fwd, third) = authed_call(&caller, server, "lim-3");
    assert!(
        !fwd && third.starts_with("SIP/2.0 403 Call Limit Reached"),
        "{third}"
    );
    assert!(s.log_text().contains("per-extension call limit"));

    // A public alias: callable without credentials from outside, routed to
    // its extension only; a caller claiming to be ours must authenticate.
    let outside = UdpSocket::bind("127.0.0.43:0").unwrap();
    let (fwd, _) = call_answer(
        &outside,
        server,
        &invite_msg(
            &outside,
            "visitor@elsewhere.example",
            "sales",
            "pub-1",
            None,
        ),
    );
    assert!(fwd, "the public alias was not forwarded");
    let (_, r) = call_answer(
        &outside,
        server,
        &invite_msg(&outside, "visitor@elsewhere.example", "1000", "pub-2", None),
    );
    assert!(r.starts_with("SIP/2.0 407"), "a non-public extension: {r}");
    let (_, r) = call_answer(
        &outside,
        server,
        &invite_msg(&outside, &format!("1001@{DOMAIN}"), "sales", "pub-3", None),
    );
    assert!(
        r.starts_with("SIP/2.0 407"),
        "a caller claiming to be ours: {r}"
    );
}

#[test]
fn incident_reports_reach_a_command_and_a_webhook() {
    let _ns = Netns::enter("notify");
    let dir = temp_dir("notify");
    let script = dir.join("notify.sh");
    let reports = dir.join("reports.jsonl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat >> {}\n", reports.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let s = start(
        "shield-notify",
        &format!(
            "[shield]\nnotify_command = \"{}\"\nnotify_url = \"http://{hook_addr}/hardline\"\n",
            script.display()
        ),
    );
    // A flood gets a source banned.
    let f = UdpSocket::bind("127.0.0.95:0").unwrap();
    for i in 0..100u32 {
        f.send_to(
            register_msg(&f, "1000", i, "Yealink", None).as_bytes(),
            s.addr(),
        )
        .unwrap();
    }
    // The webhook gets a POST with the report.
    let (mut conn, _) = {
        let deadline = Instant::now() + Duration::from_secs(10);
        hook.set_nonblocking(true).unwrap();
        loop {
            match hook.accept() {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("no webhook call: {e}\n{}", s.log_text()),
            }
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    use std::io::{Read, Write};
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
        if req.ends_with(b"}\n") {
            break;
        }
    }
    conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let req = String::from_utf8_lossy(&req);
    assert!(req.starts_with("POST /hardline HTTP/1.1"), "{req}");
    assert!(req.contains("application/json"), "{req}");
    assert!(
        req.contains("\"event\":\"banned\",\"source\":\"127.0.0.95\""),
        "{req}"
    );
    assert!(req.contains("\"evidence\":"), "{req}");
    // And the command got the same report on its standard input.
    wait_until("the command's report", 10, || {
        std::fs::read_to_string(&reports).is_ok_and(|r| r.contains("\"source\":\"127.0.0.95\""))
    });
}

/// A locked database delays storing a ban, never enforcing it: the ban is
/// in the kernel at once, the write is retried, and the store catches up.
#[test]
fn bans_reach_the_store_after_it_was_locked() {
    let ns = Netns::enter("store-retry");
    let s = start("shield-store-retry", "");
    let db = s.dir.join("hardline.db");
    let mut locker = lock_database(&db, 6);
    let f = UdpSocket::bind("127.0.0.96:0").unwrap();
    for i in 0..100u32 {
        f.send_to(
            register_msg(&f, "1000", i, "Yealink", None).as_bytes(),
            s.addr(),
        )
        .unwrap();
    }
    wait_until("ban in the kernel while the store is locked", 3, || {
        ns.banned_in_kernel("127.0.0.96")
    });
    wait_until("the failed write logged", 10, || {
        s.log_text().contains("storing bans failed; retrying")
    });
    let _ = locker.wait();
    wait_until("the ban stored after the lock", 15, || {
        String::from_utf8_lossy(&s.cli(&["ban", "list"]).stdout).contains("127.0.0.96")
    });
    assert!(metric(&s, "hardline_shield_store_errors_total", "") >= 1);
}

/// A trusted host name (a provider's FQDN) is resolved and its addresses
/// are never limited or banned; `localhost` resolves through /etc/hosts.
#[test]
fn trusted_host_names_are_resolved() {
    let ns = Netns::enter("fqdn");
    let s = start("shield-fqdn", "[shield]\ntrusted = [\"localhost\"]\n");
    wait_until("localhost resolved", 10, || {
        s.log_text().contains("trusted host resolved")
    });
    let t = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..300u32 {
        t.send_to(
            register_msg(&t, "1000", i, "friendly-scanner", None).as_bytes(),
            s.addr(),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    drain(&t);
    let m = register_msg(&t, "1000", 999, "friendly-scanner", None);
    assert!(exchange(&t, s.addr(), &m, Duration::from_millis(1500)).is_some());
    assert!(!ns.banned_in_kernel("127.0.0.1"));
    // An address the name does not resolve to is not trusted.
    let other = UdpSocket::bind("127.0.0.97:0").unwrap();
    let m = register_msg(&other, "1000", 1, "friendly-scanner", None);
    assert!(exchange(&other, s.addr(), &m, Duration::from_millis(500)).is_none());
    wait_until("the scanner banned", 5, || {
        ns.banned_in_kernel("127.0.0.97")
    });
}
