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
    user: String,
    log: PathBuf,
    ctrl: TcpStream,
    buf: Vec<u8>,
    /// Every frame received, and whether a wait has taken it.
    events: Vec<(bool, Value)>,
}

impl Baresip {
    fn start(server: &Server, user: &str, transport: &str) -> Baresip {
        require_tool("baresip", "baresip-core");
        let dir = server.dir.join(format!("baresip-{user}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sip_port = free_sip_port();
        let ctrl_port = free_port();
        // No sound card: a sine source at the rate ausine insists on, and a
        // player writing nowhere. RTP flows directly between the phones.
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             sip_trans_def {transport}\n\
             audio_source ausine,440\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             audio_player aufile,/dev/null\n\
             audio_alert aufile,/dev/null\n\
             rtp_ports 30000-39999\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module ausine.so\n\
             module aufile.so\n\
             module account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n"
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
