//! rtpload: drives G.711-sized RTP through a media relay and counts what
//! comes out, for bench/media.sh.
//!
//! Every call has two endpoints (caller, callee), each one UDP socket on
//! 127.0.0.1 (an ephemeral port), each sending one stream at RATE packets/s
//! to its relay port. Sends are spread evenly over the packet period, so
//! the relay sees a steady load rather than bursts every 20 ms. Everything
//! runs on one thread (epoll for the receive side, sleeps in epoll_wait
//! until the next send is due): the generator shares the cores with the
//! relay under test, so it must stay cheap, and its own CPU is reported.
//!
//! Call legs come either from a file ("CALLER_PORT CALLEE_PORT" per line:
//! the relay ports each endpoint sends to; hardline's, from `hardline
//! calls`), or are created here through rtpengine's ng control protocol
//! (offer/answer with each endpoint's real socket in the SDP), and deleted
//! at the end.
//!
//! Counters are snapshotted at the start and end of the measurement window
//! (after the warm-up), together with the CPU time of the watched relay
//! processes (/proc/PID/stat and every thread's), so load and CPU cover the
//! same interval. The result is one JSON object on stdout.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: rtpload (--legs FILE | --rtpengine IP:PORT --calls N) [--relay-ip IP]
       [--duration SECS] [--warmup SECS] [--rate PPS] [--payload BYTES] [--watch PID]...";

/// Bounds that keep every run finite whatever the arguments.
const MAX_SECS: f64 = 600.0;
const MAX_CALLS: usize = 5000;
/// Receive-only time after the last send, for packets still in flight.
const LINGER: Duration = Duration::from_millis(300);

struct Args {
    legs: Option<String>,
    rtpengine: Option<SocketAddr>,
    calls: usize,
    relay_ip: Ipv4Addr,
    duration: f64,
    warmup: f64,
    rate: u32,
    payload: usize,
    watch: Vec<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        legs: None,
        rtpengine: None,
        calls: 0,
        relay_ip: Ipv4Addr::LOCALHOST,
        duration: 10.0,
        warmup: 2.0,
        rate: 50,
        payload: 160,
        watch: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("bad value for {flag}: {v:?}");
        match flag.as_str() {
            "--legs" => a.legs = Some(val()?),
            "--rtpengine" => {
                let v = val()?;
                a.rtpengine = Some(v.parse().map_err(|_| bad(&v))?);
            }
            "--calls" => {
                let v = val()?;
                a.calls = v.parse().map_err(|_| bad(&v))?;
            }
            "--relay-ip" => {
                let v = val()?;
                a.relay_ip = v.parse().map_err(|_| bad(&v))?;
            }
            "--duration" | "--warmup" => {
                let v = val()?;
                let s: f64 = v.parse().map_err(|_| bad(&v))?;
                if !(0.0..=MAX_SECS).contains(&s) {
                    return Err(bad(&v));
                }
                if flag == "--duration" {
                    a.duration = s;
                } else {
                    a.warmup = s;
                }
            }
            "--rate" => {
                let v = val()?;
                a.rate = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=1000).contains(r))
                    .ok_or_else(|| bad(&v))?;
            }
            "--payload" => {
                let v = val()?;
                a.payload = v
                    .parse()
                    .ok()
                    .filter(|p| *p <= 1400)
                    .ok_or_else(|| bad(&v))?;
            }
            "--watch" => {
                let v = val()?;
                a.watch.push(v.parse().map_err(|_| bad(&v))?);
            }
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if a.legs.is_some() == a.rtpengine.is_some() {
        return Err("give either --legs or --rtpengine".into());
    }
    if a.rtpengine.is_some() && !(1..=MAX_CALLS).contains(&a.calls) {
        return Err(format!("--calls must be 1..={MAX_CALLS}"));
    }
    Ok(a)
}

/// One endpoint: its socket, where it sends, and what it counted.
struct Stream {
    sock: UdpSocket,
    dest: SocketAddr,
    seq: u16,
    ts: u32,
    ssrc: u32,
    sent: u64,
    send_errors: u64,
    recv: u64,
    /// Datagrams from another address than `dest` (a relay must answer
    /// symmetrically: from the port the endpoint sends to).
    asymmetric: u64,
}

fn bind_endpoint() -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("rtpload: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("rtpload: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    // Sockets first: rtpengine is told each endpoint's real address.
    let socks: Vec<(UdpSocket, UdpSocket)>;
    let legs: Vec<(u16, u16)>;
    let mut ng: Option<Ng> = None;
    if let Some(path) = &args.legs {
        legs = read_legs(path)?;
        if legs.is_empty() || legs.len() > MAX_CALLS {
            return Err(format!("{path}: {} calls (1..={MAX_CALLS})", legs.len()));
        }
        socks = (0..legs.len())
            .map(|_| Ok((bind_endpoint()?, bind_endpoint()?)))
            .collect::<std::io::Result<_>>()
            .map_err(|e| format!("binding endpoints: {e}"))?;
    } else {
        socks = (0..args.calls)
            .map(|_| Ok((bind_endpoint()?, bind_endpoint()?)))
            .collect::<std::io::Result<_>>()
            .map_err(|e| format!("binding endpoints: {e}"))?;
        let mut c = Ng::new(args.rtpengine.unwrap())?;
        let t = Instant::now();
        legs = socks
            .iter()
            .enumerate()
            .map(|(i, (a, b))| c.create(i, port_of(a), port_of(b)))
            .collect::<Result<_, _>>()?;
        eprintln!(
            "rtpload: {} rtpengine sessions created in {:.1} s",
            legs.len(),
            t.elapsed().as_secs_f64()
        );
        ng = Some(c);
    }

    let seed = std::process::id().wrapping_mul(2_654_435_761);
    let mut streams: Vec<Stream> = Vec::with_capacity(legs.len() * 2);
    for (i, ((a, b), (pa, pb))) in socks.into_iter().zip(legs.iter()).enumerate() {
        for (k, (sock, port)) in [(a, *pa), (b, *pb)].into_iter().enumerate() {
            streams.push(Stream {
                sock,
                dest: SocketAddr::from((args.relay_ip, port)),
                seq: 0,
                ts: 0,
                ssrc: seed ^ ((i as u32) << 1 | k as u32).wrapping_mul(0x9e37_79b9),
                sent: 0,
                send_errors: 0,
                recv: 0,
                asymmetric: 0,
            });
        }
    }
    let result = load(args, &mut streams);
    if let Some(mut c) = ng {
        c.delete_all(legs.len());
    }
    println!("{}", result?);
    Ok(())
}

fn port_of(s: &UdpSocket) -> u16 {
    s.local_addr().map(|a| a.port()).unwrap_or(0)
}

fn read_legs(path: &str) -> Result<Vec<(u16, u16)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split_whitespace().map(str::parse::<u16>);
            match (p.next(), p.next()) {
                (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
                _ => Err(format!(
                    "{path}: expected \"CALLER_PORT CALLEE_PORT\", got {l:?}"
                )),
            }
        })
        .collect()
}

// ----- the load ------------------------------------------------------------

/// Counters at one instant: the window is the difference of two.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    sent: u64,
    recv: u64,
    per_stream_recv: Vec<u64>,
    self_cpu: f64,
    watched: Vec<Option<ProcCpu>>,
    /// The host's 1-minute load average (the host is shared: /proc/stat's
    /// busy time undercounts in this VM, so no machine-wide CPU figure).
    loadavg: f64,
}

fn snapshot(streams: &[Stream], watch: &[u32]) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        sent: streams.iter().map(|s| s.sent).sum(),
        recv: streams.iter().map(|s| s.recv).sum(),
        per_stream_recv: streams.iter().map(|s| s.recv).collect(),
        self_cpu: self_cpu(),
        watched: watch.iter().map(|p| proc_cpu(*p)).collect(),
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0),
    }
}

fn load(args: &Args, streams: &mut [Stream]) -> Result<String, String> {
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!(
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        ));
    }
    for (i, s) in streams.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.sock.as_raw_fd(), &mut ev) } < 0 {
            return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
    }
    let n = streams.len() as u64;
    let period_ns = 1_000_000_000u64 / u64::from(args.rate);
    // Stream k sends at offset k/n of the period: caller and callee of a
    // call alternate, calls follow each other evenly.
    let offset: Vec<u64> = (0..n).map(|k| k * period_ns / n).collect();
    let mut pkt = vec![0xffu8; 12 + args.payload]; // µ-law silence
    let mut buf = [0u8; 2048];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];

    let start = Instant::now() + Duration::from_millis(20);
    let t_warm = start + Duration::from_secs_f64(args.warmup);
    let t_end = t_warm + Duration::from_secs_f64(args.duration);
    let t_stop = t_end + LINGER;
    let (mut next, mut cycle) = (0usize, 0u64);
    let (mut w0, mut w1): (Option<Snapshot>, Option<Snapshot>) = (None, None);
    // Lateness of sends inside the window: the generator keeps its schedule
    // or says it did not.
    let (mut late_5ms, mut max_late) = (0u64, Duration::ZERO);
    let due_of = |cycle: u64, k: usize| start + Duration::from_nanos(cycle * period_ns + offset[k]);

    loop {
        let now = Instant::now();
        if now >= t_stop {
            break;
        }
        if w0.is_none() && now >= t_warm {
            w0 = Some(snapshot(streams, &args.watch));
        }
        if w1.is_none() && now >= t_end {
            w1 = Some(snapshot(streams, &args.watch));
        }
        let sending = w1.is_none();
        if sending {
            loop {
                let due = due_of(cycle, next);
                if due > now {
                    break;
                }
                if w0.is_some() {
                    let late = now - due;
                    max_late = max_late.max(late);
                    if late > Duration::from_millis(5) {
                        late_5ms += 1;
                    }
                }
                let s = &mut streams[next];
                write_rtp(&mut pkt, s.seq == 0 && s.sent == 0, s.seq, s.ts, s.ssrc);
                match s.sock.send_to(&pkt, s.dest) {
                    Ok(_) => s.sent += 1,
                    Err(_) => s.send_errors += 1,
                }
                s.seq = s.seq.wrapping_add(1);
                s.ts = s.ts.wrapping_add(args.payload as u32);
                next += 1;
                if next == streams.len() {
                    next = 0;
                    cycle += 1;
                }
            }
        }
        // Sleep in epoll_wait until the next send or window mark, rounded
        // up to whole milliseconds (sends due meanwhile go out together).
        let mut wake = t_stop;
        if sending {
            wake = wake.min(due_of(cycle, next)).min(t_end);
        }
        if w0.is_none() {
            wake = wake.min(t_warm);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        let timeout = wait.as_micros().div_ceil(1000).min(1000) as i32;
        let got =
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        // Level-triggered: one datagram per ready socket per turn; a socket
        // with more is reported again by the next epoll_wait.
        for ev in &events[..got as usize] {
            let s = &mut streams[ev.u64 as usize];
            if let Ok((_, from)) = s.sock.recv_from(&mut buf) {
                s.recv += 1;
                if from != s.dest {
                    s.asymmetric += 1;
                }
            }
        }
    }
    unsafe { libc::close(ep) };
    let (w0, w1) = match (w0, w1) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err("the measurement window never closed".into()),
    };
    Ok(report(args, streams, &w0, &w1, late_5ms, max_late))
}

fn write_rtp(p: &mut [u8], marker: bool, seq: u16, ts: u32, ssrc: u32) {
    p[0] = 0x80; // V=2
    p[1] = if marker { 0x80 } else { 0 }; // PT 0 (PCMU)
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

fn report(
    args: &Args,
    streams: &[Stream],
    w0: &Snapshot,
    w1: &Snapshot,
    late_5ms: u64,
    max_late: Duration,
) -> String {
    let secs = (w1.at - w0.at).as_secs_f64();
    let sent_w = w1.sent - w0.sent;
    let recv_w = w1.recv - w0.recv;
    // Streams (receiving endpoints) that got nothing in the window, and the
    // least any got: a dead leg hides in a total.
    let per: Vec<u64> = w1
        .per_stream_recv
        .iter()
        .zip(&w0.per_stream_recv)
        .map(|(b, a)| b - a)
        .collect();
    let dead = per.iter().filter(|r| **r == 0).count();
    let min_recv = per.iter().copied().min().unwrap_or(0);
    let sum = |f: fn(&Stream) -> u64| streams.iter().map(f).sum::<u64>();
    let mut o = String::new();
    let _ = write!(
        o,
        "{{\"calls\":{},\"streams\":{},\"rate_pps_per_stream\":{},\"udp_payload_bytes\":{},\
         \"warmup_s\":{},\"window_s\":{:.3},\"sent_window\":{},\"received_window\":{},\
         \"sent_pps\":{:.1},\"received_pps\":{:.1},\"delivery\":{:.6},\
         \"dead_streams\":{},\"min_stream_received\":{},\
         \"sent_total\":{},\"received_total\":{},\"send_errors\":{},\"asymmetric\":{},\
         \"late_sends_over_5ms\":{},\"max_late_ms\":{:.2},\"generator_cpu_s\":{:.3},\
         \"loadavg_1m_at_end\":{:.2},\"clk_tck\":{},\"watched\":[",
        streams.len() / 2,
        streams.len(),
        args.rate,
        12 + args.payload,
        args.warmup,
        secs,
        sent_w,
        recv_w,
        sent_w as f64 / secs,
        recv_w as f64 / secs,
        if sent_w > 0 {
            recv_w as f64 / sent_w as f64
        } else {
            0.0
        },
        dead,
        min_recv,
        sum(|s| s.sent),
        sum(|s| s.recv),
        sum(|s| s.send_errors),
        sum(|s| s.asymmetric),
        late_5ms,
        max_late.as_secs_f64() * 1e3,
        w1.self_cpu - w0.self_cpu,
        w1.loadavg,
        clk_tck(),
    );
    for (i, pid) in args.watch.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        match (&w0.watched[i], &w1.watched[i]) {
            (Some(a), Some(b)) => {
                let tck = clk_tck() as f64;
                let _ = write!(
                    o,
                    "{{\"pid\":{pid},\"cpu_s\":{:.3},\"voluntary_switches\":{},\
                     \"involuntary_switches\":{},\"threads\":[",
                    (b.ticks - a.ticks) as f64 / tck,
                    b.voluntary.saturating_sub(a.voluntary),
                    b.involuntary.saturating_sub(a.involuntary),
                );
                // Threads alive at both marks, by TID.
                let mut first = true;
                for (tid, name, t1) in &b.threads {
                    let Some((_, _, t0)) = a.threads.iter().find(|(t, _, _)| t == tid) else {
                        continue;
                    };
                    if !first {
                        o.push(',');
                    }
                    first = false;
                    let _ = write!(
                        o,
                        "{{\"tid\":{tid},\"name\":{},\"cpu_s\":{:.3}}}",
                        json_str(name),
                        (t1 - t0) as f64 / tck
                    );
                }
                o.push_str("]}");
            }
            _ => {
                let _ = write!(o, "{{\"pid\":{pid},\"cpu_s\":null,\"threads\":[]}}");
            }
        }
    }
    o.push_str("]}");
    o
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ----- CPU accounting ------------------------------------------------------

#[derive(Clone)]
struct ProcCpu {
    /// utime + stime of the whole process, in clock ticks.
    ticks: u64,
    /// (tid, comm, utime + stime) of every thread.
    threads: Vec<(u32, String, u64)>,
    /// Context switches of all threads (voluntary: mostly sleeps in
    /// epoll_wait, i.e. wake-ups; involuntary: preemptions).
    voluntary: u64,
    involuntary: u64,
}

/// (comm, utime + stime) from a /proc stat line.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_string();
    // Fields after the name start at field 3 (state); utime is 14, stime 15.
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((name, ut + st))
}

fn proc_cpu(pid: u32) -> Option<ProcCpu> {
    let (_, ticks) = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let mut threads = Vec::new();
    let (mut voluntary, mut involuntary) = (0, 0);
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((name, t)) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
            {
                threads.push((tid, name, t));
            }
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            for l in status.lines() {
                let num = |v: &str| v.trim().parse::<u64>().unwrap_or(0);
                if let Some(v) = l.strip_prefix("voluntary_ctxt_switches:") {
                    voluntary += num(v);
                } else if let Some(v) = l.strip_prefix("nonvoluntary_ctxt_switches:") {
                    involuntary += num(v);
                }
            }
        }
    }
    threads.sort();
    Some(ProcCpu {
        ticks,
        threads,
        voluntary,
        involuntary,
    })
}

fn clk_tck() -> i64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
}

/// This process's user + system CPU seconds.
fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

// ----- rtpengine's ng protocol ---------------------------------------------

/// A bencode value (what ng replies are made of).
#[derive(Debug)]
enum B {
    Int(i64),
    Str(Vec<u8>),
    List(Vec<B>),
    Dict(Vec<(Vec<u8>, B)>),
}

impl B {
    fn encode(&self, o: &mut Vec<u8>) {
        match self {
            B::Int(i) => o.extend_from_slice(format!("i{i}e").as_bytes()),
            B::Str(s) => {
                o.extend_from_slice(format!("{}:", s.len()).as_bytes());
                o.extend_from_slice(s);
            }
            B::List(l) => {
                o.push(b'l');
                l.iter().for_each(|v| v.encode(o));
                o.push(b'e');
            }
            B::Dict(d) => {
                // Keys in sorted order, as bencode wants.
                let mut d: Vec<&(Vec<u8>, B)> = d.iter().collect();
                d.sort_by(|a, b| a.0.cmp(&b.0));
                o.push(b'd');
                for (k, v) in d {
                    B::Str(k.clone()).encode(o);
                    v.encode(o);
                }
                o.push(b'e');
            }
        }
    }

    /// Decodes one value at the start of `s`; returns it and the rest.
    fn decode(s: &[u8]) -> Option<(B, &[u8])> {
        match *s.first()? {
            b'i' => {
                let end = s.iter().position(|c| *c == b'e')?;
                let i = std::str::from_utf8(&s[1..end]).ok()?.parse().ok()?;
                Some((B::Int(i), &s[end + 1..]))
            }
            b'l' | b'd' => {
                let dict = s[0] == b'd';
                let mut rest = &s[1..];
                let (mut l, mut d) = (Vec::new(), Vec::new());
                while *rest.first()? != b'e' {
                    if dict {
                        let (k, r) = B::decode(rest)?;
                        let B::Str(k) = k else { return None };
                        let (v, r) = B::decode(r)?;
                        d.push((k, v));
                        rest = r;
                    } else {
                        let (v, r) = B::decode(rest)?;
                        l.push(v);
                        rest = r;
                    }
                }
                Some((if dict { B::Dict(d) } else { B::List(l) }, &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = s.iter().position(|c| *c == b':')?;
                let len: usize = std::str::from_utf8(&s[..colon]).ok()?.parse().ok()?;
                let body = s.get(colon + 1..colon + 1 + len)?;
                Some((B::Str(body.to_vec()), &s[colon + 1 + len..]))
            }
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&B> {
        match self {
            B::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self) -> Option<String> {
        match self {
            B::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

fn s(v: &str) -> B {
    B::Str(v.as_bytes().to_vec())
}

fn dict(items: Vec<(&str, B)>) -> B {
    B::Dict(
        items
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// An ng control client: requests over UDP, each with a fresh cookie,
/// retried a bounded number of times.
struct Ng {
    sock: UdpSocket,
    n: u64,
    tag: String,
}

impl Ng {
    fn new(to: SocketAddr) -> Result<Ng, String> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        sock.connect(to).map_err(|e| format!("ng {to}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(1000)))
            .map_err(|e| e.to_string())?;
        Ok(Ng {
            sock,
            n: 0,
            tag: format!("rtpload{}", std::process::id()),
        })
    }

    fn request(&mut self, msg: B) -> Result<B, String> {
        self.n += 1;
        let cookie = format!("{}_{}", self.tag, self.n);
        let mut out = format!("{cookie} ").into_bytes();
        msg.encode(&mut out);
        let mut buf = vec![0u8; 65536];
        for _ in 0..3 {
            self.sock.send(&out).map_err(|e| format!("ng send: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let Ok(n) = self.sock.recv(&mut buf) else {
                    break;
                };
                let reply = &buf[..n];
                // Only the answer to this request (a late one to an earlier
                // try of another request carries another cookie).
                let Some(body) = reply.strip_prefix(format!("{cookie} ").as_bytes()) else {
                    continue;
                };
                let (v, _) = B::decode(body).ok_or("ng: undecodable reply")?;
                let result = v.get("result").and_then(B::str).unwrap_or_default();
                if result != "ok" {
                    let reason = v.get("error-reason").and_then(B::str).unwrap_or_default();
                    return Err(format!("ng: result {result:?}: {reason}"));
                }
                return Ok(v);
            }
        }
        Err("ng: no reply from rtpengine (3 tries)".into())
    }

    fn sdp(port: u16, id: u64) -> String {
        format!(
            "v=0\r\no=- {id} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        )
    }

    fn call_id(&self, i: usize) -> String {
        format!("{}-call-{i}", self.tag)
    }

    /// Offer (caller's endpoint) and answer (callee's); returns the relay
    /// ports the caller and the callee send to.
    fn create(&mut self, i: usize, caller: u16, callee: u16) -> Result<(u16, u16), String> {
        let call_id = self.call_id(i);
        let offer = self.request(dict(vec![
            ("command", s("offer")),
            ("call-id", s(&call_id)),
            ("from-tag", s("caller")),
            ("sdp", s(&Ng::sdp(caller, 2 * i as u64))),
            ("ICE", s("remove")),
        ]))?;
        // The offer as rewritten goes to the callee: its port is where the
        // callee sends.
        let to_callee = media_port(&offer)?;
        let answer = self.request(dict(vec![
            ("command", s("answer")),
            ("call-id", s(&call_id)),
            ("from-tag", s("caller")),
            ("to-tag", s("callee")),
            ("sdp", s(&Ng::sdp(callee, 2 * i as u64 + 1))),
            ("ICE", s("remove")),
        ]))?;
        let to_caller = media_port(&answer)?;
        Ok((to_caller, to_callee))
    }

    fn delete_all(&mut self, calls: usize) {
        let mut failed = 0;
        for i in 0..calls {
            let call_id = self.call_id(i);
            let r = self.request(dict(vec![
                ("command", s("delete")),
                ("call-id", s(&call_id)),
                ("from-tag", s("caller")),
            ]));
            if r.is_err() {
                failed += 1;
            }
        }
        if failed > 0 {
            eprintln!("rtpload: {failed} of {calls} rtpengine deletes failed");
        }
    }
}

/// The port of the first `m=audio` line of an ng reply's SDP.
fn media_port(reply: &B) -> Result<u16, String> {
    let sdp = reply
        .get("sdp")
        .and_then(B::str)
        .ok_or("ng: reply without sdp")?;
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("ng: no m=audio port in {sdp:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bencode_round_trip() {
        let v = dict(vec![("b", B::Int(-3)), ("a", B::List(vec![s("x"), s("")]))]);
        let mut o = Vec::new();
        v.encode(&mut o);
        assert_eq!(o, b"d1:al1:x0:e1:bi-3ee");
        let (d, rest) = B::decode(&o).unwrap();
        assert!(rest.is_empty());
        assert!(matches!(d.get("b"), Some(B::Int(-3))));
    }

    #[test]
    fn stat_parsing_survives_odd_names() {
        let line = "123 (a b) c) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("a b) c".to_string(), 100)));
    }
}
