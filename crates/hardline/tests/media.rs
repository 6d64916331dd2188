//! The media relay with real peers: SIPp places and answers calls through
//! hardline (the callee echoes RTP with `-rtp_echo`) while the test sends
//! speech (espeak-ng, sox, G.711) from an address the caller's SDP does not
//! name, as a phone behind NAT does; the relay must latch onto it, carry
//! both directions, and write a call record whose statistics and MOS match
//! what happened. In a network namespace of its own, nftables drops a
//! random share of the RTP and the measured loss must match the imposed one.

mod common;
use common::*;
use media::emodel;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// A call from 1000 to 2000 through the server: SIPp on both ends, the
/// callee echoing RTP. Returns the running SIPp instances and the live
/// call once answered.
fn sipp_call(s: &Server, secs: u32) -> (Sipp, Sipp, Value) {
    let echo_port = free_port().to_string();
    let uas = callee(s, "uas", "uas.xml", &["-rtp_echo", "-mp", &echo_port]);
    // The SDP names this port; the test sends from another one.
    let declared = free_port().to_string();
    let uac = caller(
        s,
        "uac_media.xml",
        &["-d", &(secs * 1000).to_string(), "-mp", &declared],
    );
    let call = wait_answered_call(s, Duration::from_secs(15));
    (uac, uas, call)
}

/// SIPp as extension 2000 (registered at its port) running `scenario` for
/// one call.
fn callee(s: &Server, name: &str, scenario: &str, extra: &[&str]) -> Sipp {
    let port = free_port();
    register(s, "2000", &format!("127.0.0.1:{port}"), "udp", "u1", 300);
    let mut args = vec!["-m", "1"];
    args.extend_from_slice(extra);
    let uas = sipp_spawn(s, name, scenario, "u1", port, &args);
    std::thread::sleep(Duration::from_millis(300));
    uas
}

/// SIPp as extension 1000 calling 2000 once with `scenario`.
fn caller(s: &Server, scenario: &str, extra: &[&str]) -> Sipp {
    let csv = users_csv(&s.dir, "caller.csv", &[("1000", &password("1000"), "2000")]);
    let mut args = vec!["-inf", csv.to_str().unwrap(), "-m", "1"];
    args.extend_from_slice(extra);
    sipp_spawn(s, "uac", scenario, "u1", free_port(), &args)
}

/// Sends `frames` (G.711 payloads) to `to` every `interval`, RTP timestamps
/// advancing by the payload length; returns what came back, by sequence
/// number, read until `linger` after the last send.
fn send_and_receive(
    sock: &UdpSocket,
    to: SocketAddr,
    frames: &[Vec<u8>],
    interval: Duration,
    linger: Duration,
) -> Vec<(u16, Vec<u8>)> {
    let rx = sock.try_clone().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = rx.recv(&mut buf) {
                    if let Ok(h) = media::rtp::parse_rtp(&buf[..n]) {
                        got.push((h.seq, buf[h.header_len..n].to_vec()));
                    }
                }
            }
            got
        })
    };
    let start = Instant::now();
    let mut ts = 0u32;
    for (i, f) in frames.iter().enumerate() {
        let due = start + interval * i as u32;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let mut h = [0u8; 12];
        media::rtp::write_rtp_header(&mut h, i == 0, 0, i as u16, ts, 0x5eed_0001);
        let mut pkt = h.to_vec();
        pkt.extend_from_slice(f);
        sock.send_to(&pkt, to).unwrap();
        ts = ts.wrapping_add(f.len() as u32);
    }
    std::thread::sleep(linger);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap()
}

fn relay_port(call: &Value, direction: &str) -> u16 {
    stream(call, direction)["relay_port"].as_u64().unwrap() as u16
}

fn speech_frames(dir: &std::path::Path, frame: usize) -> Vec<Vec<u8>> {
    let wav = speech_wav(
        dir,
        "speech",
        "This call goes through the hardline relay. One two three four five.",
        "u-law",
    );
    let audio = media::wav::Audio::from_wav(&std::fs::read(wav).unwrap()).unwrap();
    let mut all = Vec::new();
    let mut i = 0;
    while let Some(f) = audio.frame(i, false) {
        all.extend_from_slice(f);
        i += 1;
    }
    all.chunks(frame).map(<[u8]>::to_vec).collect()
}

#[test]
fn sipp_call_carries_both_directions_through_the_relay_for_a_natted_caller() {
    require_tool("sipp", "sip-tester");
    let s = Server::start("media-sipp", "");
    let (uac, uas, call) = sipp_call(&s, 6);
    let frames: Vec<Vec<u8>> = speech_frames(&s.dir, 160).into_iter().take(150).collect();
    assert_eq!(frames.len(), 150, "espeak-ng made less than 3 s of speech");
    // Caller's media from a port its SDP does not name.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], relay_port(&call, "caller_to_callee")));
    let got = send_and_receive(
        &sock,
        to,
        &frames,
        Duration::from_millis(20),
        Duration::from_millis(500),
    );
    // Every frame went to the callee through the relay and came back
    // through it, unchanged.
    assert!(
        got.len() >= 145,
        "only {} of 150 frames came back; server log:\n{}",
        got.len(),
        s.log_text()
    );
    for (seq, payload) in &got {
        assert_eq!(payload, &frames[usize::from(*seq)], "frame {seq} changed");
    }
    // While the call is up, `hardline calls` shows the latched address.
    let live = live_calls(&s);
    let c = &live[0];
    assert_eq!(
        stream(c, "caller_to_callee")["peer"],
        sock.local_addr().unwrap().to_string(),
        "{c}"
    );
    uac.expect_success(&s);
    uas.expect_success(&s);
    // The record: both directions measured, G.711, no loss, rated.
    let rec = newest_record(&s);
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert_eq!(rec["codec"], "PCMU", "{rec}");
    assert!(rec["from"].as_str().unwrap().contains("1000"), "{rec}");
    assert!(rec["to"].as_str().unwrap().contains("2000"), "{rec}");
    assert!(rec["answered_at"].is_string() && rec["ended_at"].is_string());
    for d in ["caller_to_callee", "callee_to_caller"] {
        let st = stream(&rec, d);
        assert!(st["packets"].as_u64().unwrap() >= 140, "{d}: {st}");
        assert_eq!(st["lost"], 0, "{d}: {st}");
        // SIPp sends no RTCP: no round trip, listening quality.
        assert_eq!(st["mos_kind"], "listening", "{d}: {st}");
        assert!(st["mos"].as_f64().unwrap() > 4.0, "{d}: {st}");
    }
    let m = s.metrics();
    let relayed = metric_value(&m, "hardline_media_relayed_packets_total").unwrap_or(0.0);
    assert!(relayed >= 290.0, "relayed packets metric: {relayed}\n{m}");
    // BESIP's table: time, from, to, MOS, codec.
    let table = s.cli(&["cdr"]);
    let text = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME", "FROM", "TO", "MOS", "CODEC"], "{text}");
    assert!(text.contains("PCMU"), "{text}");
}

#[test]
fn strangers_cannot_inject_into_a_call() {
    require_tool("sipp", "sip-tester");
    let s = Server::start("media-inject", "");
    let (uac, uas, call) = sipp_call(&s, 4);
    // The caller latches first; then a stranger (another loopback address)
    // sends to both relay ports.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], relay_port(&call, "caller_to_callee")));
    let b = SocketAddr::from(([127, 0, 0, 1], relay_port(&call, "callee_to_caller")));
    let frames = vec![vec![0xffu8; 160]; 50];
    let got = send_and_receive(
        &sock,
        a,
        &frames,
        Duration::from_millis(20),
        Duration::from_millis(300),
    );
    assert!(got.len() >= 45, "echo through the relay: {}", got.len());
    let stranger = UdpSocket::bind("127.0.0.99:0").unwrap();
    let mut h = [0u8; 12];
    media::rtp::write_rtp_header(&mut h, false, 0, 1, 1, 0xbad);
    for _ in 0..20 {
        stranger.send_to(&h, a).unwrap();
        stranger.send_to(&h, b).unwrap();
    }
    // Garbage from the caller itself is dropped too.
    for _ in 0..5 {
        sock.send_to(b"\x00\x01", a).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let m = s.metrics();
    let count = |reason: &str| -> f64 {
        metric_value(
            &m,
            &format!("hardline_media_drops_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(count("stranger") >= 40.0, "stranger drops:\n{m}");
    assert!(count("malformed") >= 5.0, "malformed drops:\n{m}");
    // Nothing of the stranger's reached the caller.
    stranger
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        stranger.recv(&mut buf).is_err(),
        "the relay answered a stranger"
    );
    uac.expect_success(&s);
    uas.expect_success(&s);
}

/// The nftables counter of the rule named by `comment`.
fn rule_packets(comment: &str) -> u64 {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "hltest"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(comment))
        .unwrap_or_else(|| panic!("rule {comment} not found:\n{text}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "packets").unwrap();
    w[i + 1].parse().unwrap()
}

#[test]
fn measured_loss_matches_the_loss_nftables_imposes() {
    require_tool("sipp", "sip-tester");
    let _ns = Netns::enter("loss");
    // The quality hook: a script that keeps what it is given.
    let hook_dir = temp_dir("media-loss-hook");
    let hook = hook_dir.join("hook.sh");
    let reports = hook_dir.join("reports.txt");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$HARDLINE_EVENT\" >> {0}\ncat >> {0}\n",
            reports.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = Server::start(
        "media-loss",
        &format!(
            "[media]\nmos_threshold = 4.2\n[shield]\ntrusted = [\"127.0.0.0/8\"]\nkernel = false\nnotify_command = \"{}\"\n",
            hook.display()
        ),
    );
    let (uac, uas, call) = sipp_call(&s, 14);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport = sock.local_addr().unwrap().port();
    let port = relay_port(&call, "caller_to_callee");
    // 6 % of what the caller sends to the relay is dropped at random.
    let rules = format!(
        "table inet hltest {{\n chain input {{\n  type filter hook input priority -10; policy accept;\n  \
         udp sport {sport} udp dport {port} numgen random mod 100 < 6 counter drop comment \"loss\"\n  \
         udp sport {sport} udp dport {port} counter comment \"passed\"\n }}\n}}\n"
    );
    let f = s.dir.join("loss.nft");
    std::fs::write(&f, rules).unwrap();
    let st = Command::new("nft").arg("-f").arg(&f).status().unwrap();
    assert!(st.success(), "nft -f failed");
    // 6000 frames of 1 ms (8 samples): enough that chance stays well
    // inside one point of loss.
    let frames = vec![vec![0x7fu8; 8]; 6000];
    let got = send_and_receive(
        &sock,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &frames,
        Duration::from_millis(1),
        Duration::from_millis(500),
    );
    let dropped = rule_packets("\"loss\"");
    let passed = rule_packets("\"passed\"");
    assert_eq!(dropped + passed, 6000);
    let imposed = dropped as f64 * 100.0 / 6000.0;
    assert!(imposed > 3.0 && imposed < 9.0, "imposed {imposed}");
    assert!(!got.is_empty());
    uac.expect_success(&s);
    uas.expect_success(&s);
    let rec = newest_record(&s);
    eprintln!("imposed {imposed} %, record: {rec}");
    let st = stream(&rec, "caller_to_callee");
    let measured = st["loss_pct"].as_f64().unwrap();
    assert!(
        (measured - imposed).abs() <= 1.0,
        "measured {measured} % vs imposed {imposed} %: {st}"
    );
    // The MOS in the record is the E-model of the measured inputs.
    let expect = emodel::score(
        emodel::codec_constants("PCMU", true),
        &emodel::Measured {
            loss_pct: measured,
            burst_ratio: st["burst_ratio"].as_f64().unwrap(),
            jitter_ms: st["jitter_ms"].as_f64().unwrap(),
            packetisation_ms: st["ptime_ms"].as_f64().unwrap(),
            rtt_ms: None,
        },
    );
    let emodel::Score::Rated { r, mos, .. } = expect else {
        panic!("G.711 is rated")
    };
    assert!(
        (st["mos"].as_f64().unwrap() - mos).abs() < 0.005,
        "{st} vs {mos}"
    );
    assert!(
        (st["r_factor"].as_f64().unwrap() - r).abs() < 0.05,
        "{st} vs {r}"
    );
    assert!(mos < 4.2, "6 % loss must cost quality: {mos}");
    // Below media.mos_threshold: a quality event, counted and reported.
    assert!(metric(&s, "hardline_call_quality_events_total") >= 1.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let t = std::fs::read_to_string(&reports).unwrap_or_default();
        if t.contains("call_quality") || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.starts_with("quality\n"), "{text}");
    assert!(
        text.contains("\"event\":\"call_quality\"") && text.contains("caller_to_callee"),
        "{text}"
    );
    assert!(s
        .log_text()
        .contains("call quality below media.mos_threshold"));
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "hltest"])
        .status();
    let _ = std::fs::remove_dir_all(&hook_dir);
}

fn metric(s: &Server, name: &str) -> f64 {
    let m = s.metrics();
    metric_value(&m, name).unwrap_or_else(|| panic!("no {name} in\n{m}"))
}

/// Waits until the relay holds no session (the gauge is refreshed every
/// second).
fn wait_no_sessions(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(s, "hardline_media_sessions") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "relay sessions left:\n{}",
            s.metrics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_silent_call_is_hung_up_on_both_sides() {
    require_tool("sipp", "sip-tester");
    let s = Server::start("media-timeout", "[media]\ntimeout_secs = 5\n");
    let echo_port = free_port().to_string();
    let uas = callee(&s, "uas", "uas.xml", &["-rtp_echo", "-mp", &echo_port]);
    let uac = caller(&s, "uac_hungup.xml", &[]);
    let call = wait_answered_call(&s, Duration::from_secs(15));
    // Half a second of audio, then nothing: the phones (SIPp here) would
    // keep the call up for ever; hardline ends it with a BYE to each.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], relay_port(&call, "caller_to_callee")));
    send_and_receive(
        &sock,
        to,
        &vec![vec![0xffu8; 160]; 25],
        Duration::from_millis(20),
        Duration::from_millis(100),
    );
    let t = Instant::now();
    uac.expect_success(&s);
    uas.expect_success(&s);
    assert!(t.elapsed() >= Duration::from_secs(3), "hung up too early");
    let rec = newest_record(&s);
    assert_eq!(rec["disposition"], "media_timeout", "{rec}");
    assert!(
        stream(&rec, "caller_to_callee")["packets"]
            .as_u64()
            .unwrap()
            >= 20,
        "{rec}"
    );
    assert_eq!(metric(&s, "hardline_call_media_timeouts_total"), 1.0);
    wait_no_sessions(&s);
    assert_eq!(live_calls(&s), serde_json::json!([]));
}

#[test]
fn a_cancelled_call_releases_its_ports_and_is_recorded() {
    require_tool("sipp", "sip-tester");
    let s = Server::start("media-cancel", "");
    let uas = callee(&s, "uas-ring", "uas_ring.xml", &[]);
    caller(&s, "uac_cancel.xml", &[]).expect_success(&s);
    uas.expect_success(&s);
    let rec = newest_record(&s);
    assert_eq!(rec["disposition"], "cancelled", "{rec}");
    assert!(rec["answered_at"].is_null(), "{rec}");
    wait_no_sessions(&s);
    assert_eq!(live_calls(&s), serde_json::json!([]));
}

#[test]
fn unparsable_sdp_gets_488_and_reaches_nobody() {
    require_tool("sipp", "sip-tester");
    let s = Server::start("media-bad-sdp", "");
    // The callee exists and is registered, but must never see the INVITE.
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = callee.local_addr().unwrap().port();
    register(&s, "2000", &format!("127.0.0.1:{port}"), "udp", "u1", 300);
    caller(&s, "uac_bad_sdp.xml", &[]).expect_success(&s);
    callee
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(callee.recv(&mut buf).is_err(), "the callee got something");
    let rec = newest_record(&s);
    assert_eq!(rec["disposition"], "failed", "{rec}");
    assert_eq!(rec["status"], 488, "{rec}");
    wait_no_sessions(&s);
    // The server is unharmed.
    assert!(options_ping(s.addr(), Duration::from_secs(2)).is_some());
}
