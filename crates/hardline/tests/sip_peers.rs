//! The real binary driven by real peers: SIPp (Debian sip-tester) for
//! registration, calls over UDP and TCP, CANCEL and forking; a small
//! SHA-256 digest client of our own; the RFC 4475 corpus over UDP; restart
//! persistence and reload.

mod common;
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn register_md5_then_unregister() {
    let s = Server::start("reg", "");
    register(&s, "1000", "127.0.0.1:25001", "udp", "u1", 300);
    let regs = s.registrations();
    assert!(regs.contains("sip:1000@127.0.0.1:25001"), "{regs}");
    register(&s, "1000", "127.0.0.1:25001", "udp", "u1", 0);
    let regs = s.registrations();
    assert!(
        !regs.contains("sip:1000@127.0.0.1:25001"),
        "still registered:\n{regs}"
    );
    let m = s.metrics();
    assert!(
        m.contains("hardline_sip_requests_total{method=\"REGISTER\"}"),
        "{m}"
    );
    assert!(
        m.contains("hardline_register_total{result=\"ok\"} 2"),
        "{m}"
    );
}

fn call(transport: &str, ctransport: &str) {
    let s = Server::start(&format!("call-{ctransport}"), "");
    let uas_port = free_port();
    register(
        &s,
        "2000",
        &format!("127.0.0.1:{uas_port}"),
        ctransport,
        transport,
        300,
    );
    let uas = sipp_spawn(&s, "uas", "uas.xml", transport, uas_port, &["-m", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let csv = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    sipp_run(
        &s,
        "uac",
        "uac_call.xml",
        transport,
        &["-inf", csv.to_str().unwrap(), "-m", "1"],
    );
    uas.expect_success(&s);
}

#[test]
fn call_through_proxy_udp() {
    call("u1", "udp");
}

#[test]
fn call_through_proxy_tcp() {
    call("t1", "tcp");
}

#[test]
fn cancel_while_ringing() {
    let s = Server::start("cancel", "");
    let uas_port = free_port();
    register(
        &s,
        "2000",
        &format!("127.0.0.1:{uas_port}"),
        "udp",
        "u1",
        300,
    );
    let uas = sipp_spawn(&s, "uas-ring", "uas_ring.xml", "u1", uas_port, &["-m", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let csv = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    sipp_run(
        &s,
        "uac-cancel",
        "uac_cancel.xml",
        "u1",
        &["-inf", csv.to_str().unwrap(), "-m", "1"],
    );
    uas.expect_success(&s);
}

#[test]
fn forking_to_two_contacts_cancels_the_loser() {
    let s = Server::start("fork", "");
    let answer_port = free_port();
    let ring_port = free_port();
    register(
        &s,
        "2000",
        &format!("127.0.0.1:{answer_port}"),
        "udp",
        "u1",
        300,
    );
    register(
        &s,
        "2000",
        &format!("127.0.0.1:{ring_port}"),
        "udp",
        "u1",
        300,
    );
    let regs = s.registrations();
    assert_eq!(regs.matches("sip:2000@").count(), 2, "{regs}");
    let winner = sipp_spawn(&s, "uas-answer", "uas.xml", "u1", answer_port, &["-m", "1"]);
    let loser = sipp_spawn(
        &s,
        "uas-ring",
        "uas_ring.xml",
        "u1",
        ring_port,
        &["-m", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let csv = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    sipp_run(
        &s,
        "uac",
        "uac_call.xml",
        "u1",
        &["-inf", csv.to_str().unwrap(), "-m", "1"],
    );
    winner.expect_success(&s);
    // The ringing branch must have been cancelled (it expects CANCEL, 487, ACK).
    loser.expect_success(&s);
}

#[test]
fn registrations_survive_restart() {
    let mut s = Server::start("restart", "");
    let uas_port = free_port();
    register(
        &s,
        "2000",
        &format!("127.0.0.1:{uas_port}"),
        "udp",
        "u1",
        600,
    );
    assert!(s.stop(), "SIGTERM must stop the server cleanly");
    s.spawn();
    let regs = s.registrations();
    assert!(regs.contains(&format!("127.0.0.1:{uas_port}")), "{regs}");
    let uas = sipp_spawn(&s, "uas", "uas.xml", "u1", uas_port, &["-m", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    let csv = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    sipp_run(
        &s,
        "uac",
        "uac_call.xml",
        "u1",
        &["-inf", csv.to_str().unwrap(), "-m", "1"],
    );
    uas.expect_success(&s);
}

// ----- a digest client of our own -------------------------------------------

#[test]
fn sha256_digest_with_own_client() {
    let s = Server::start("sha256", "");
    let mut c = Client::new(s.addr());
    let r = c.register("1001", None, "sha-1@test");
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    let ch = challenges(&r);
    // MD5 is listed first by default, SHA-256 offered too (RFC 8760).
    assert_eq!(ch.len(), 2, "{r}");
    assert!(ch[0].contains("algorithm=MD5"), "{ch:?}");
    assert!(ch[1].contains("algorithm=SHA-256"), "{ch:?}");
    let parsed = sip::auth::Challenge::parse(&ch[1]).unwrap();
    let uri = format!("sip:{DOMAIN}");
    let auth = sip::auth::client_authorization(
        &parsed,
        "REGISTER",
        &uri,
        "1001",
        &password("1001"),
        "abcdef01",
        1,
    )
    .unwrap();
    let ok = c.register("1001", Some(&auth), "sha-1@test");
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(ok.contains("Contact: <sip:1001@"), "{ok}");
    // The server keeps no transaction after the 200; a retransmission (its
    // 200 lost) is recognised by the binding it made and answered 200 again.
    let again = c.resend();
    assert!(again.starts_with("SIP/2.0 200 "), "{again}");
    assert!(again.contains("Contact: <sip:1001@"), "{again}");
    assert!(
        s.metrics()
            .contains("hardline_register_total{result=\"retransmission\"} 1"),
        "the retransmission was not recognised"
    );
    // Replaying the same credentials (same nc) is refused with a new challenge.
    let replay = c.register("1001", Some(&auth), "sha-1@test");
    assert!(replay.starts_with("SIP/2.0 401 "), "{replay}");
    // A wrong password gets the same challenge as no credentials at all.
    let bad = sip::auth::client_authorization(
        &parsed,
        "REGISTER",
        &uri,
        "1001",
        "wrong-password-xx",
        "abcdef02",
        1,
    )
    .unwrap();
    let r = c.register("1001", Some(&bad), "sha-1@test");
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    assert!(
        !s.log_text().contains(&password("1001")),
        "a password reached the log"
    );
}

/// Contact is validated by the registrar, not by the parser: a REGISTER
/// with a malformed Contact is challenged like any other and, once
/// authenticated, refused with 400; nothing is bound.
#[test]
fn malformed_contact_is_refused_by_the_registrar() {
    let s = Server::start("badcontact", "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let req = |n: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bc{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1002@{DOMAIN}>;tag=bc\r\nTo: <sip:1002@{DOMAIN}>\r\nCall-ID: badcontact@test\r\nCSeq: {n} REGISTER\r\nContact: <sip:1002@bad host>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let mut buf = [0u8; 65535];
    let mut exchange = |m: String| {
        sock.send_to(m.as_bytes(), s.addr()).unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("no answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let r = exchange(req(1, ""));
    assert!(r.starts_with("SIP/2.0 401 "), "{r}");
    let uri = format!("sip:{DOMAIN}");
    let auth = answer_challenge(&r, "WWW-Authenticate", "REGISTER", &uri, "1002", "bc01");
    let r = exchange(req(2, &format!("Authorization: {auth}\r\n")));
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    assert!(!s.registrations().contains("sip:1002@"), "nothing bound");
}

/// A database locked by another process: the REGISTER is answered 500 with
/// Retry-After once the store gives up, the server keeps serving, nothing
/// stored before is lost, and the next REGISTER after the lock is gone works.
#[test]
fn locked_database_answers_500_with_retry_after() {
    let s = Server::start("locked", "");
    let mut c = Client::new(s.addr());
    c.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let register = |c: &mut Client, call_id: &str| -> String {
        let r = c.register("1001", None, call_id);
        let ch = challenges(&r);
        let parsed = sip::auth::Challenge::parse(&ch[0]).unwrap();
        let auth = sip::auth::client_authorization(
            &parsed,
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            "1001",
            &password("1001"),
            "0a1b2c3d",
            1,
        )
        .unwrap();
        c.register("1001", Some(&auth), call_id)
    };
    let first = register(&mut c, "locked-1@test");
    assert!(first.starts_with("SIP/2.0 200 "), "{first}");

    // Another process takes the write lock and holds it.
    let db = s.dir.join("hardline.db");
    let mut locker = lock_database(&db, 8);

    let r = register(&mut c, "locked-2@test");
    assert!(r.starts_with("SIP/2.0 500 "), "{r}");
    assert!(r.contains("Retry-After: "), "{r}");
    // Still serving while the lock is held.
    assert!(options_ping(s.addr(), Duration::from_secs(2))
        .is_some_and(|r| r.starts_with("SIP/2.0 200")));
    let _ = locker.wait();

    let again = register(&mut c, "locked-3@test");
    assert!(again.starts_with("SIP/2.0 200 "), "{again}");
    assert!(
        s.log_text().contains("storing registrations failed"),
        "the failure is logged"
    );
    let regs = s.registrations();
    assert!(regs.contains("1001 "), "{regs}");
}

/// Known and unknown users get the same answer: the same status, headers,
/// order and challenge; only the echoed user, tags and nonce differ.
#[test]
fn unknown_and_known_users_get_identical_challenges() {
    let s = Server::start("enum", "");
    let mut c = Client::new(s.addr());
    let known = c.register("1000", None, "enum@test");
    let unknown = c.register("9999", None, "enum@test");
    assert_eq!(
        normalise_answer(&known, "1000"),
        normalise_answer(&unknown, "9999")
    );
    // And with wrong credentials for both.
    let ch = challenges(&known);
    let parsed = sip::auth::Challenge::parse(&ch[0]).unwrap();
    let uri = format!("sip:{DOMAIN}");
    let a1 = sip::auth::client_authorization(
        &parsed,
        "REGISTER",
        &uri,
        "1000",
        "not-the-password",
        "c1",
        1,
    )
    .unwrap();
    let a2 = sip::auth::client_authorization(
        &parsed,
        "REGISTER",
        &uri,
        "9999",
        "not-the-password",
        "c2",
        1,
    )
    .unwrap();
    let k = c.register("1000", Some(&a1), "enum2@test");
    let u = c.register("9999", Some(&a2), "enum2@test");
    assert_eq!(normalise_answer(&k, "1000"), normalise_answer(&u, "9999"));
    assert!(
        !known.contains("Server:") && !known.contains("User-Agent:"),
        "{known}"
    );
}

/// Challenges are answered statelessly (RFC 3261 §8.2.7, §26.3.2.4): no
/// transaction is kept for unauthenticated traffic, a retransmission gets the
/// same To tag, and the ACK of a 407 is absorbed without an answer.
#[test]
fn challenges_keep_no_state_and_absorb_the_ack() {
    let s = Server::start("stateless", "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sl-1\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=sl1\r\nTo: <sip:1001@{DOMAIN}>\r\nCall-ID: stateless@test\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{local}>\r\nContent-Length: 0\r\n\r\n"
    );
    let mut buf = [0u8; 65535];
    let mut tags = Vec::new();
    for _ in 0..2 {
        sock.send_to(invite.as_bytes(), s.addr()).unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("no answer to INVITE");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(r.starts_with("SIP/2.0 407 "), "{r}");
        let to = r
            .lines()
            .find(|l| l.starts_with("To:"))
            .unwrap()
            .to_string();
        tags.push(to.split(";tag=").nth(1).expect("To tag").to_string());
    }
    assert_eq!(
        tags[0], tags[1],
        "a retransmission must get the same To tag"
    );
    let ack = format!(
        "ACK sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sl-1\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=sl1\r\nTo: <sip:1001@{DOMAIN}>;tag={}\r\nCall-ID: stateless@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        tags[0]
    );
    sock.send_to(ack.as_bytes(), s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "an ACK gets no answer");
    let m = s.metrics();
    assert!(m.contains("hardline_transactions_active 0"), "{m}");
    assert!(
        !m.contains("reason=\"stray_ack\""),
        "the ACK was absorbed:\n{m}"
    );
}

/// RFC 5626 §4.4.1: a CRLFCRLF ping on a TCP connection gets a CRLF pong,
/// also when the ping arrives in pieces, and the connection stays usable.
#[test]
fn tcp_crlf_keepalive_gets_a_pong() {
    use std::io::{Read, Write};
    let s = Server::start("keepalive", "");
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut pong = [0u8; 2];
    c.write_all(b"\r\n\r\n").unwrap();
    c.read_exact(&mut pong).expect("no pong to a CRLFCRLF ping");
    assert_eq!(&pong, b"\r\n");
    c.write_all(b"\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"\r\n").unwrap();
    c.read_exact(&mut pong)
        .expect("no pong to a ping sent in two pieces");
    assert_eq!(&pong, b"\r\n");
    let local = c.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-ka-1\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=ka\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: keepalive@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    c.write_all(options.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).unwrap();
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
}

// ----- RFC 4475 over the wire -----------------------------------------------

fn corpus_dir() -> std::path::PathBuf {
    let d = std::env::var_os("HARDLINE_RFC4475_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/conformance/rfc4475"));
    assert!(
        d.join("INDEX.tsv").exists(),
        "RFC 4475 corpus not found at {} (set HARDLINE_RFC4475_DIR)",
        d.display()
    );
    d
}

#[test]
fn rfc4475_corpus_over_udp_then_a_good_options() {
    let s = Server::start("rfc4475", "");
    let dir = corpus_dir();
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    let mut checked = 0;
    for line in index
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let name = line.split('\t').next().unwrap();
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).unwrap();
        // A socket per message: retransmitted finals of earlier INVITEs
        // (no ACK ever comes) must not be taken for this message's answer.
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        sock.send_to(&bytes, s.addr()).unwrap();
        // Collect what comes back (the server may answer 100 first).
        let mut replies = Vec::new();
        let mut buf = [0u8; 65535];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            replies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let finals: Vec<&String> = replies
            .iter()
            .filter(|r| !r.starts_with("SIP/2.0 100 "))
            .collect();
        let status = |want: &str| {
            finals
                .iter()
                .any(|r| r.starts_with(&format!("SIP/2.0 {want} ")))
        };
        match name {
            "badinv01" | "clerr" | "ncl" | "scalar02" | "quotbal" | "ltgtruri" | "lwsruri"
            | "lwsstart" | "trws" | "escruri" | "badaspec" | "baddn" | "mismatch01"
            | "mismatch02" | "insuf" | "multi01" | "mcl01" => {
                assert!(status("400"), "{name}: expected 400, got {replies:?}")
            }
            "badvers" => assert!(status("505"), "{name}: expected 505, got {replies:?}"),
            "unkscm" => assert!(status("416"), "{name}: expected 416, got {replies:?}"),
            "scalarlg" | "bigcode" | "bcast" | "unreason" | "noreason" => {
                assert!(
                    replies.is_empty(),
                    "{name}: a response must be discarded, got {replies:?}"
                )
            }
            _ => {
                // Valid or semantically odd requests: answered, never a crash.
                assert!(
                    !finals.iter().any(|r| r.starts_with("SIP/2.0 400 ")),
                    "{name}: wrongly rejected: {replies:?}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 49, "every corpus message must be sent");
    let r = options_ping(s.addr(), Duration::from_secs(2)).expect("server stopped answering");
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert!(r.contains("Allow: "), "{r}");
}

// ----- configuration and CLI --------------------------------------------------

#[test]
fn check_config_lists_every_problem() {
    let dir = temp_dir("checkcfg");
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[sip]\nlisten = [\"foo\"]\ndomain = \"\"\n[storage]\npathh = \"x\"\n[[extensions]]\nuser = \"1000\"\npassword = \"short\"\n",
    )
    .unwrap();
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "sip.listen[0]",
        "sip.domain",
        "storage.pathh",
        "extensions[0].password",
    ] {
        assert!(err.contains(key), "missing {key} in:\n{err}");
    }
    assert!(!err.contains("short\""), "the password was echoed:\n{err}");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"example.test\"\n",
    )
    .unwrap();
    let out = check_config(&good);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn sighup_reloads_and_refuses_a_bad_config() {
    let s = Server::start("hup", "");
    let base = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{base}\n[[extensions]]\nuser = \"3000\"\npassword = \"{}\"\n",
            password("3000")
        ),
    )
    .unwrap();
    s.signal(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.log_text().contains("configuration reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    register(&s, "3000", "127.0.0.1:25003", "udp", "u1", 300);
    std::fs::write(&s.config, "[sip]\nlisten = 7\n").unwrap();
    s.signal(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.log_text().contains("reload refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "bad config not refused:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Still serving with the previous configuration.
    register(&s, "3000", "127.0.0.1:25003", "udp", "u1", 300);
}

#[test]
fn user_cli_adds_lists_and_removes() {
    let s = Server::start("usercli", "");
    let out = s.cli(&["user", "add", "4000"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pw = stdout
        .split("password ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(pw.len() >= 16, "{stdout}");
    let list = String::from_utf8_lossy(&s.cli(&["user", "list"]).stdout).into_owned();
    assert!(list.contains("4000") && list.contains("1000"), "{list}");
    // The running server picks the new user up and it can register.
    std::thread::sleep(Duration::from_millis(2500));
    let csv = users_csv(&s.dir, "u4000.csv", &[("4000", &pw, "")]);
    sipp_run(
        &s,
        "reg4000",
        "reg.xml",
        "u1",
        &[
            "-inf",
            csv.to_str().unwrap(),
            "-m",
            "1",
            "-key",
            "contact",
            "127.0.0.1:25004",
            "-key",
            "ctransport",
            "udp",
            "-key",
            "expires",
            "60",
            "-auth_uri",
            DOMAIN,
        ],
    );
    let out = s.cli(&["user", "remove", "1000"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "config users are managed in the config: {out:?}"
    );
    let out = s.cli(&["user", "remove", "4000"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn first_start_on_embedded_defaults() {
    // The embedded defaults put bans into nftables: in a namespace of the
    // test's own, never the host's.
    let _ns = Netns::enter("first-start");
    let home = temp_dir("home");
    let child = std::process::Command::new(bin())
        .arg("serve")
        .env("HARDLINE_HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !home.join("hardline.toml").exists() || !home.join("hardline.db").exists() {
        assert!(std::time::Instant::now() < deadline, "no config written");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::process::Command::new("kill")
        .arg("-15")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1000") && stdout.contains("1002"),
        "{stdout}"
    );
    let cfg = std::fs::read_to_string(home.join("hardline.toml")).unwrap();
    assert!(
        cfg.contains("127.0.0.1:5060"),
        "loopback only by default:\n{cfg}"
    );
    assert!(
        !cfg.contains("password ="),
        "only hashes are written:\n{cfg}"
    );
    let check = check_config(&home.join("hardline.toml"));
    assert!(check.status.success(), "{check:?}");
}

/// The same for every other method a scanner probes users with: INVITE,
/// OPTIONS, SUBSCRIBE and MESSAGE to an existing and a missing user get
/// the same 407 and challenge.
#[test]
fn other_methods_reveal_nothing_about_users() {
    let s = Server::start("enum-methods", "");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let ask = |method: &str, user: &str, n: u32| -> String {
        let m = format!(
            "{method} sip:{user}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-em{n}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{DOMAIN}>;tag=em{n}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: em-{n}@test\r\nCSeq: 1 {method}\r\nContact: <sip:1001@{local}>\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(m.as_bytes(), s.addr()).unwrap();
        let mut buf = [0u8; 65535];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("no answer");
            let r = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !r.starts_with("SIP/2.0 100") {
                return r;
            }
        }
    };
    let mut n = 0;
    for method in ["INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE"] {
        n += 1;
        let known = ask(method, "1000", n);
        n += 1;
        let unknown = ask(method, "9999", n);
        assert!(known.starts_with("SIP/2.0 407 "), "{method}: {known}");
        let blank = |r: &str, user: &str, k: u32| {
            normalise_answer(r, user)
                .replace(&format!("em-{k}"), "CALL")
                .replace(&format!("em{k}"), "TAG")
        };
        let k = blank(&known, "1000", n - 1);
        let u = blank(&unknown, "9999", n);
        assert_eq!(k, u, "{method}");
    }
}
