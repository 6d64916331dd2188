//! A real softphone: two baresip instances (Debian `baresip`) register to
//! hardline and call each other through it, driven over baresip's ctrl_tcp
//! interface (netstring JSON commands and events).
//!
//! baresip 1.0 (Debian 12) abandons authentication when any challenge names
//! an algorithm it does not know (its libre handles MD5 only), instead of
//! ignoring that challenge as RFC 8760 asks; so these servers challenge with
//! MD5 only, the setting the README gives for such fleets.

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A UDP+TCP port whose successor is free too: baresip also binds TLS on
/// the next port.
fn free_sip_port() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair");
}

struct Baresip {
    child: Child,
    dir: PathBuf,
    user: String,
    log: PathBuf,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Every frame received, and whether a wait has taken it.
    events: Vec<(bool, Value)>,
}

impl Baresip {
    fn start(server: &Server, user: &str, transport: &str) -> Baresip {
        Baresip::start_with(server, user, transport, None)
    }

    /// A phone whose microphone is `speech` (8 kHz mono 16-bit WAV) when
    /// given, a 440 Hz tone otherwise; what it hears is dumped to WAV files
    /// in its directory (baresip's sndfile module).
    fn start_with(server: &Server, user: &str, transport: &str, speech: Option<&Path>) -> Baresip {
        require_tool("baresip", "baresip-core");
        let dir = server.dir.join(format!("baresip-{user}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sip_port = free_sip_port();
        let ctrl_port = free_port();
        // No sound card: a sine source at the rate ausine insists on (or a
        // speech file at its own rate), and a player writing nowhere. RTP
        // goes through hardline's relay.
        let source = match speech {
            Some(p) => format!(
                "audio_source aufile,{}\nausrc_srate 8000\nausrc_channels 1\n",
                p.display()
            ),
            None => "audio_source ausine,440\nausrc_srate 48000\nausrc_channels 2\n".to_string(),
        };
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             sip_trans_def {transport}\n\
             {source}\
             audio_player aufile,/dev/null\n\
             audio_alert aufile,/dev/null\n\
             rtp_ports 30000-39999\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module ausine.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             snd_path {}\n\
             module account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n",
            dir.display()
        );
        std::fs::write(dir.join("config"), config).unwrap();
        let accounts = format!(
            "<sip:{user}@{DOMAIN};transport={transport}>;auth_pass={};outbound=\"sip:127.0.0.1:{};transport={transport}\";regint=300;answermode=auto\n",
            password(user),
            server.port
        );
        std::fs::write(dir.join("accounts"), accounts).unwrap();
        let log = dir.join("baresip.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("baresip")
            .args(["-4", "-s", "-f"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting baresip");
        let ctrl = connect_ctrl(ctrl_port, &log);
        ctrl.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Baresip {
            child,
            dir,
            user: user.to_string(),
            log,
            ctrl,
            buf: Vec::new(),
            events: Vec::new(),
        }
    }

    fn command(&mut self, command: &str, params: &str) {
        let body =
            serde_json::json!({"command": command, "params": params, "token": command}).to_string();
        write!(self.ctrl, "{}:{},", body.len(), body).unwrap();
        let resp = self.wait_for(Duration::from_secs(5), |v| {
            v["response"] == true && v["token"] == command
        });
        assert_eq!(
            resp["ok"], true,
            "baresip {} refused `{command} {params}`: {resp}",
            self.user
        );
    }

    /// Returns the first frame not yet taken that satisfies `pred`, reading
    /// more until one does. Frames stay in `events` (in order, for the failure
    /// message); an event that arrived while waiting for something else is
    /// still found later.
    fn wait_for(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(v) = self.next_frame() {
                self.events.push((false, v));
            }
            if let Some((taken, v)) = self.events.iter_mut().find(|(t, v)| !*t && pred(v)) {
                *taken = true;
                return v.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "baresip {}: expected event not seen; events: {:#?}\nlog:\n{}",
                    self.user,
                    self.events,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let mut chunk = [0u8; 4096];
            match self.ctrl.read(&mut chunk) {
                Ok(0) => panic!("baresip {} closed its control socket", self.user),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("control socket: {e}"),
            }
        }
    }

    fn next_frame(&mut self) -> Option<Value> {
        let colon = self.buf.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
        if self.buf.len() < colon + 1 + len + 1 {
            return None;
        }
        let v = serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len])
            .expect("baresip sent a netstring that is not JSON");
        self.buf.drain(..colon + 1 + len + 1);
        Some(v)
    }

    fn wait_event(&mut self, kind: &str, limit: Duration) -> Value {
        self.wait_for(limit, |v| v["event"] == true && v["type"] == kind)
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // Only the process this test started, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect_ctrl(port: u16, log: &Path) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "baresip control port did not open; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Waits until every user has a binding whose source is on `transport`.
fn wait_registered(server: &Server, users: &[&str], transport: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let regs = server.registrations();
        let all = users.iter().all(|u| {
            regs.lines().any(|l| {
                l.starts_with(&format!("{u} ")) && l.contains(&format!(" {transport}:127.0.0.1:"))
            })
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "baresip did not register {users:?}; registrations:\n{regs}\nserver log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `caller` dials `callee`, both see the call established and RTP flowing,
/// then the caller hangs up and the BYE reaches the callee.
fn call(caller: &mut Baresip, callee: &mut Baresip) {
    let t = Duration::from_secs(15);
    let target = format!("sip:{}@{DOMAIN}", callee.user);
    caller.command("dial", &target);
    let est = callee.wait_event("CALL_ESTABLISHED", t);
    assert_eq!(est["direction"], "incoming", "{est}");
    assert_eq!(est["peeruri"], format!("sip:{}@{DOMAIN}", caller.user));
    caller.wait_event("CALL_ESTABLISHED", t);
    // The SDP went through the proxy intact: media started both ways.
    caller.wait_event("CALL_RTPESTAB", t);
    callee.wait_event("CALL_RTPESTAB", t);
    caller.command("hangup", "");
    caller.wait_event("CALL_CLOSED", t);
    let closed = callee.wait_event("CALL_CLOSED", t);
    assert_eq!(closed["direction"], "incoming", "{closed}");
}

fn two_phones_call_each_other(transport: &str) {
    let s = Server::start_with_sip(
        &format!("baresip-{transport}"),
        "auth_algorithms = [\"MD5\"]\n",
        "",
    );
    let mut a = Baresip::start(&s, "1000", transport);
    let mut b = Baresip::start(&s, "1001", transport);
    wait_registered(&s, &["1000", "1001"], transport);
    call(&mut a, &mut b);
    call(&mut b, &mut a);
    let m = s.metrics();
    for method in ["INVITE", "ACK", "BYE"] {
        assert!(
            m.contains(&format!(
                "hardline_sip_requests_total{{method=\"{method}\"}}"
            )),
            "no {method} counted:\n{m}"
        );
    }
}

#[test]
fn baresip_phones_register_and_call_each_other_udp() {
    two_phones_call_each_other("udp");
}

#[test]
fn baresip_phones_register_and_call_each_other_tcp() {
    two_phones_call_each_other("tcp");
}

impl Baresip {
    /// The loudness (RMS of 16-bit samples) of everything this phone heard
    /// in its calls so far (baresip's sndfile dumps of decoded audio).
    fn heard_rms(&self) -> f64 {
        let mut sum = 0f64;
        let mut n = 0usize;
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("dump-") && name.ends_with("-dec.wav")) {
                continue;
            }
            let b = std::fs::read(e.path()).unwrap();
            // Samples follow the 44-byte header sndfile writes.
            for c in b.get(44..).unwrap_or(&[]).chunks_exact(2) {
                let v = f64::from(i16::from_le_bytes([c[0], c[1]]));
                sum += v * v;
                n += 1;
            }
        }
        if n == 0 {
            0.0
        } else {
            (sum / n as f64).sqrt()
        }
    }
}

/// Speech for a phone's microphone: 8 kHz mono 16-bit, some 10 s.
fn speech(s: &Server) -> PathBuf {
    speech_wav(
        &s.dir,
        "speech",
        "Hello, this is a test call through the hardline media relay. \
         The relay measures loss, jitter and the round trip of every stream, \
         and rates each direction with the E-model. One, two, three, four, five, \
         six, seven, eight, nine, ten.",
        "signed-integer",
    )
}

fn server_with_apps(tag: &str) -> Server {
    let dir = temp_dir(&format!("{tag}-wav"));
    let wav = speech_wav(
        &dir,
        "announcement",
        "Welcome to hardline. This is an announcement.",
        "u-law",
    );
    Server::start_with_sip(
        tag,
        "auth_algorithms = [\"MD5\"]\n",
        &format!(
            "[media]\necho = [\"*43\"]\n[[media.announcements]]\nnumber = \"*44\"\nfile = \"{}\"\nloop = false\n",
            wav.display()
        ),
    )
}

/// The newest call record to `to`, waiting for it to be written.
fn record_to(s: &Server, to: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = cdrs(s)
            .into_iter()
            .rev()
            .find(|r| r["to"].as_str().is_some_and(|t| t.contains(to)))
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no call record to {to}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn baresip_call_is_relayed_and_both_directions_are_rated() {
    let s = server_with_apps("baresip-mos");
    let talk = speech(&s);
    let mut a = Baresip::start_with(&s, "1000", "udp", Some(&talk));
    let mut b = Baresip::start(&s, "1001", "udp");
    wait_registered(&s, &["1000", "1001"], "udp");
    let t = Duration::from_secs(15);
    a.command("dial", &format!("sip:1001@{DOMAIN}"));
    b.wait_event("CALL_ESTABLISHED", t);
    a.wait_event("CALL_ESTABLISHED", t);
    a.wait_event("CALL_RTPESTAB", t);
    b.wait_event("CALL_RTPESTAB", t);
    // Long enough for RTCP reports both ways (every 5 s or so).
    std::thread::sleep(Duration::from_secs(16));
    let live = live_calls(&s);
    assert_eq!(live.as_array().map(Vec::len), Some(1), "{live}");
    a.command("hangup", "");
    a.wait_event("CALL_CLOSED", t);
    b.wait_event("CALL_CLOSED", t);
    // The callee heard the caller's speech through the relay.
    let rms = b.heard_rms();
    assert!(rms > 300.0, "callee heard silence (RMS {rms})");
    let rec = record_to(&s, "1001");
    eprintln!("callee heard RMS {rms}; record: {rec}");
    assert_eq!(rec["disposition"], "answered", "{rec}");
    for d in ["caller_to_callee", "callee_to_caller"] {
        let st = stream(&rec, d);
        assert!(st["packets"].as_u64().unwrap() > 200, "{d}: {rec}");
        assert!(st["mos"].as_f64().is_some(), "{d} not rated: {rec}");
        assert!(st["mos"].as_f64().unwrap() > 4.0, "{d}: {rec}");
        // baresip sends RTCP: the relay times both legs, so the score is
        // conversational.
        assert!(st["rtt_ms"].as_f64().is_some(), "{d}: no round trip: {rec}");
        assert_eq!(st["mos_kind"], "conversational", "{d}: {rec}");
    }
    assert!(rec["mos"].as_f64().is_some(), "{rec}");
}

#[test]
fn baresip_hears_itself_on_the_echo_test_number_and_the_announcement() {
    let s = server_with_apps("baresip-apps");
    let talk = speech(&s);
    let mut a = Baresip::start_with(&s, "1000", "udp", Some(&talk));
    wait_registered(&s, &["1000"], "udp");
    let t = Duration::from_secs(15);
    a.command("dial", &format!("sip:*43@{DOMAIN}"));
    a.wait_event("CALL_ESTABLISHED", t);
    a.wait_event("CALL_RTPESTAB", t);
    std::thread::sleep(Duration::from_secs(4));
    a.command("hangup", "");
    a.wait_event("CALL_CLOSED", t);
    let echoed = a.heard_rms();
    eprintln!("echo RMS {echoed}");
    assert!(
        echoed > 300.0,
        "the echo test returned silence (RMS {echoed})"
    );
    let rec = record_to(&s, "*43");
    assert_eq!(rec["disposition"], "answered", "{rec}");
    let st = stream(&rec, "caller_to_callee");
    assert!(st["packets"].as_u64().unwrap() > 100, "{rec}");
    // The announcement plays once, then hardline hangs up.
    a.command("dial", &format!("sip:*44@{DOMAIN}"));
    a.wait_event("CALL_ESTABLISHED", t);
    let closed = a.wait_event("CALL_CLOSED", Duration::from_secs(20));
    assert_eq!(closed["direction"], "outgoing", "{closed}");
    let rec = record_to(&s, "*44");
    assert_eq!(rec["disposition"], "answered", "{rec}");
    assert!(
        rec["ended_at"].is_string() && rec["answered_at"].is_string(),
        "{rec}"
    );
}
