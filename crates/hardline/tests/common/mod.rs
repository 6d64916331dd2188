//! Shared by the integration tests: start the real `hardline` binary on free
//! loopback ports with a temporary config, and drive it with real peers.
//! A missing peer tool fails the test loudly; nothing is skipped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "example.test";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hardline")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn scenario(name: &str) -> PathBuf {
    repo_root().join("tests/sipp").join(name)
}

/// The password of test extension `user` (all are long and distinct).
pub fn password(user: &str) -> String {
    format!("test-secret-{user}-long")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("hardline-it-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

pub fn require_tool(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is required for this test and is not installed: apt-get install {package} (scripts/test.sh installs it)"
    );
}

pub struct Server {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
}

pub fn default_users() -> Vec<&'static str> {
    vec!["1000", "1001", "1002", "2000"]
}

impl Server {
    /// Writes a config for `users` plus `extra` TOML and starts the server.
    pub fn start(tag: &str, extra: &str) -> Server {
        Server::start_with_sip(tag, "", extra)
    }

    /// Like [`Server::start`], with `sip_extra` added to the `[sip]` table.
    pub fn start_with_sip(tag: &str, sip_extra: &str, extra: &str) -> Server {
        let dir = temp_dir(tag);
        let port = free_port();
        let metrics_port = free_port();
        let mut cfg = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]\ndomain = \"{DOMAIN}\"\n{sip_extra}\n[storage]\npath = \"hardline.db\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n"
        );
        cfg.push_str(extra);
        // These tests drive the server from loopback at load-generator
        // rates; like an operator's load generator, loopback is trusted.
        // They run in the host's network namespace, whose nftables are not
        // ours to touch: bans stay in-process. The shield's own tests
        // (tests/shield.rs) run in namespaces of their own, without this.
        if !extra.contains("[shield]") {
            cfg.push_str("\n[shield]\ntrusted = [\"127.0.0.0/8\"]\nkernel = false\n");
        }
        for u in default_users() {
            cfg.push_str(&format!(
                "\n[[extensions]]\nuser = \"{u}\"\npassword = \"{}\"\n",
                password(u)
            ));
        }
        let config = dir.join("hardline.toml");
        std::fs::write(&config, cfg).unwrap();
        let mut s = Server {
            log: dir.join("server.log"),
            dir,
            config,
            port,
            metrics_port,
            child: None,
        };
        s.spawn();
        s
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("HARDLINE_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting hardline");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("hardline exited early ({st}); log:\n{}", self.log_text());
                }
            }
            if let Some(r) = options_ping(self.addr(), Duration::from_millis(300)) {
                if r.starts_with("SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!(
            "hardline did not answer OPTIONS in time; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            let pid = c.id() as i32;
            // Only the process this test started, by PID.
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status()
                .unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        self.signal_pid(c.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_pid(&self, pid: u32, sig: i32) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    pub fn registrations(&self) -> String {
        let out = self.cli(&["registrations"]);
        assert!(out.status.success(), "registrations failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn metrics(&self) -> String {
        http_get(
            SocketAddr::from(([127, 0, 0, 1], self.metrics_port)),
            "/metrics",
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server log kept in {}", self.log.display());
        }
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Sends an OPTIONS to the server itself over UDP and returns the reply.
pub fn options_ping(server: SocketAddr, wait: Duration) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let local = sock.local_addr().ok()?;
    let msg = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ping{}\r\nMax-Forwards: 70\r\nFrom: <sip:ping@{DOMAIN}>;tag=p1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: ping-{}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        COUNTER.fetch_add(1, Ordering::SeqCst),
        Instant::now().elapsed().as_nanos()
    );
    sock.send_to(msg.as_bytes(), server).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let mut buf = [0u8; 65535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Writes a SIPp injection file: user;domain;[authentication ...];callee
pub fn users_csv(dir: &Path, name: &str, rows: &[(&str, &str, &str)]) -> PathBuf {
    let p = dir.join(name);
    let mut s = String::from("SEQUENTIAL\n");
    for (user, pw, callee) in rows {
        s.push_str(&format!(
            "{user};{DOMAIN};[authentication username={user} password={pw}];{callee}\n"
        ));
    }
    std::fs::write(&p, s).unwrap();
    p
}

pub struct Sipp {
    pub child: Child,
    pub name: String,
    pub dir: PathBuf,
}

/// Starts SIPp against the server: `transport` "u1" or "t1".
pub fn sipp_spawn(
    server: &Server,
    name: &str,
    scenario_file: &str,
    transport: &str,
    local_port: u16,
    extra: &[&str],
) -> Sipp {
    sipp_spawn_from(
        server,
        name,
        scenario_file,
        transport,
        "127.0.0.1",
        local_port,
        extra,
    )
}

/// [`sipp_spawn`] with SIPp's packets coming from `local_ip`.
pub fn sipp_spawn_from(
    server: &Server,
    name: &str,
    scenario_file: &str,
    transport: &str,
    local_ip: &str,
    local_port: u16,
    extra: &[&str],
) -> Sipp {
    require_tool("sipp", "sip-tester");
    let out = server.dir.join(format!("sipp-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    // SIPp runs in the foreground under `timeout` so the test owns its PID
    // and no run can outlive its bound.
    let child = Command::new("timeout")
        .arg("60")
        .arg("sipp")
        .arg(server.addr().to_string())
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-t", transport, "-i", local_ip, "-p"])
        .arg(local_port.to_string())
        .args(["-nostdin", "-trace_err", "-trace_msg"])
        .args(["-recv_timeout", "15000", "-timeout", "40s"])
        .args(extra)
        .current_dir(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sipp");
    Sipp {
        child,
        name: name.to_string(),
        dir: out,
    }
}

impl Sipp {
    /// Waits for SIPp to finish; panics with its logs unless it exited 0.
    pub fn expect_success(mut self, server: &Server) {
        let st = self.child.wait().unwrap();
        if !st.success() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let mut logs = String::new();
            if let Ok(rd) = std::fs::read_dir(&self.dir) {
                for f in rd.flatten() {
                    let txt = std::fs::read_to_string(f.path()).unwrap_or_default();
                    let tail: String = txt
                        .chars()
                        .rev()
                        .take(6000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    logs.push_str(&format!("--- {}\n{}\n", f.path().display(), tail));
                }
            }
            panic!(
                "sipp {} failed ({st}):\n{err}\n{logs}\n--- server log\n{}",
                self.name,
                server.log_text()
            );
        }
    }
}

/// Runs SIPp to completion and asserts success.
pub fn sipp_run(server: &Server, name: &str, scenario_file: &str, transport: &str, extra: &[&str]) {
    let port = free_port();
    sipp_spawn(server, name, scenario_file, transport, port, extra).expect_success(server);
}

/// Registers `user` with Contact `contact` (host:port) via SIPp.
pub fn register(
    server: &Server,
    user: &str,
    contact: &str,
    ctransport: &str,
    transport: &str,
    expires: u32,
) {
    register_from(
        server,
        "127.0.0.1",
        user,
        contact,
        ctransport,
        transport,
        expires,
    );
}

/// [`register`] with SIPp's packets coming from `local_ip`.
pub fn register_from(
    server: &Server,
    local_ip: &str,
    user: &str,
    contact: &str,
    ctransport: &str,
    transport: &str,
    expires: u32,
) {
    let csv = users_csv(
        &server.dir,
        &format!("reg-{user}.csv"),
        &[(user, &password(user), "")],
    );
    let csv = csv.to_string_lossy().into_owned();
    let exp = expires.to_string();
    sipp_spawn_from(
        server,
        &format!("reg-{user}-{}", COUNTER.fetch_add(1, Ordering::SeqCst)),
        "reg.xml",
        transport,
        local_ip,
        free_port(),
        &[
            "-inf",
            &csv,
            "-m",
            "1",
            "-key",
            "contact",
            contact,
            "-key",
            "ctransport",
            ctransport,
            "-key",
            "expires",
            &exp,
            "-auth_uri",
            DOMAIN,
        ],
    )
    .expect_success(server);
}

/// Runs `hardline check-config --config path`.
pub fn check_config(path: &Path) -> Output {
    Command::new(bin())
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

/// The credentials answering the first `header` challenge (e.g.
/// `WWW-Authenticate`, `Proxy-Authenticate`) of `response`, for `user` with
/// its test password: the value of an Authorization or Proxy-Authorization
/// header (nc 1).
pub fn answer_challenge(
    response: &str,
    header: &str,
    method: &str,
    uri: &str,
    user: &str,
    cnonce: &str,
) -> String {
    let value = response
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(header).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {header} in:\n{response}"));
    let challenge = sip::auth::Challenge::parse(value).unwrap();
    sip::auth::client_authorization(&challenge, method, uri, user, &password(user), cnonce, 1)
        .unwrap()
}

/// A minimal UDP SIP client for REGISTERs, from a chosen local address.
pub struct Client {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    n: u32,
    last: String,
}

impl Client {
    pub fn new(server: SocketAddr) -> Client {
        Client::new_from("127.0.0.1", server)
    }

    /// A client whose requests come from `ip` (any 127/8 address works on
    /// loopback).
    pub fn new_from(ip: &str, server: SocketAddr) -> Client {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Client {
            sock,
            server,
            n: 0,
            last: String::new(),
        }
    }

    pub fn register(&mut self, user: &str, auth: Option<&str>, call_id: &str) -> String {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let mut m = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-c{}-{:x}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=ft{}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 120\r\n",
            self.n,
            call_id.len() * 7919 + self.n as usize,
            self.n,
            self.n
        );
        if let Some(a) = auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        self.last = m;
        self.resend()
    }

    /// Sends the last request again, byte for byte (a retransmission).
    pub fn resend(&mut self) -> String {
        self.sock
            .send_to(self.last.as_bytes(), self.server)
            .unwrap();
        let mut buf = [0u8; 65535];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("no answer to REGISTER");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

pub fn challenges(resp: &str) -> Vec<String> {
    resp.lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(|s| s.trim().to_string())
        .collect()
}

/// A network namespace that the calling thread (and every process it
/// starts) lives in until the end of the test; deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn enter(tag: &str) -> Netns {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the shield tests need root (network namespaces, nftables); CI runs them as root"
        );
        require_tool("ip", "iproute2");
        require_tool("nft", "nftables");
        let name = format!("hl{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name} failed");
        let f = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on a namespace fd we hold; it moves this thread
        // only, which is the test's own.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let st = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(st.success());
        Netns { name }
    }

    /// Makes `ip` the source of packets to 127.0.0.1 from sockets that do
    /// not bind an address (svwar and svcrack 0.3.3 ignore their `-b`).
    pub fn default_source(&self, ip: &str) {
        let st = Command::new("ip")
            .args([
                "route",
                "replace",
                "local",
                "127.0.0.1/32",
                "dev",
                "lo",
                "src",
                ip,
                "table",
                "local",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// `nft list set inet hardline SET` in this namespace.
    pub fn set(&self, set: &str) -> String {
        let out = Command::new("nft")
            .args(["list", "set", "inet", "hardline", set])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn banned_in_kernel(&self, ip: &str) -> bool {
        let set = self.set("ban4");
        set.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .any(|w| w == ip)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An answer with what legitimately differs between two requests blanked:
/// the echoed user, tags, branch, nonce, Via and CSeq.
pub fn normalise_answer(r: &str, user: &str) -> String {
    r.lines()
        .map(|l| {
            let l = l.replace(user, "USER");
            let l = match l.find("nonce=\"") {
                Some(i) => {
                    let end = l[i + 7..].find('"').map(|e| i + 7 + e).unwrap_or(l.len());
                    format!("{}NONCE{}", &l[..i + 7], &l[end..])
                }
                None => l,
            };
            if l.starts_with("Via:") || l.starts_with("CSeq:") {
                return l[..4].to_string();
            }
            if l.starts_with("To:") || l.starts_with("From:") {
                l.split(";tag=")
                    .next()
                    .unwrap()
                    .split(";branch=")
                    .next()
                    .unwrap()
                    .to_string()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Another process takes the database's write lock and holds it for `secs`
/// seconds; returns once it holds it (wait on the child to know it let go).
pub fn lock_database(db: &Path, secs: u32) -> Child {
    let mut locker = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys,time\n\
             c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked',flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('ROLLBACK')",
        )
        .arg(db)
        .arg(secs.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the lock holder");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    locker
}

/// Speech for media tests: espeak-ng says `text`, sox makes it 8 kHz mono
/// in `encoding` ("u-law" for G.711, "signed-integer" for 16-bit PCM).
pub fn speech_wav(dir: &Path, name: &str, text: &str, encoding: &str) -> PathBuf {
    require_tool("espeak-ng", "espeak-ng");
    require_tool("sox", "sox");
    let raw = dir.join(format!("{name}-raw.wav"));
    let out = dir.join(format!("{name}.wav"));
    let st = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .unwrap();
    assert!(st.success(), "espeak-ng failed");
    let mut sox = Command::new("sox");
    sox.arg(&raw)
        .args(["-r", "8000", "-c", "1", "-e", encoding]);
    if encoding == "signed-integer" {
        sox.args(["-b", "16"]);
    }
    let st = sox.arg(&out).status().unwrap();
    assert!(st.success(), "sox failed");
    out
}

/// `hardline calls --format json`, parsed.
pub fn live_calls(server: &Server) -> serde_json::Value {
    let out = server.cli(&["calls", "--format", "json"]);
    assert!(
        out.status.success(),
        "hardline calls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("hardline calls prints JSON")
}

/// Waits for an answered call and returns it.
pub fn wait_answered_call(server: &Server, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let calls = live_calls(server);
        if let Some(c) = calls
            .as_array()
            .and_then(|a| a.iter().find(|c| c["state"] == "answered"))
        {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no answered call; calls: {calls}\nserver log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `hardline cdr --format json`, parsed.
pub fn cdrs(server: &Server) -> Vec<serde_json::Value> {
    let out = server.cli(&["cdr", "--format", "json"]);
    assert!(
        out.status.success(),
        "hardline cdr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("hardline cdr prints JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The stream of `direction` in a call record or live call.
pub fn stream<'a>(call: &'a serde_json::Value, direction: &str) -> &'a serde_json::Value {
    call["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["direction"] == direction))
        .unwrap_or_else(|| panic!("no {direction} stream in {call}"))
}

/// The newest call record, waiting for the store to have one.
pub fn newest_record(server: &Server) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = cdrs(server).into_iter().last() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no call record; server log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one series (name with its labels, exactly as printed) in
/// an OpenMetrics text.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
