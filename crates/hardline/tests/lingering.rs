//! After their final response, transactions linger (up to 32 s over UDP) as
//! compact remnants. Two user agents of our own, each on a UDP socket, make
//! a call through the real binary and retransmit at every step where a lost
//! datagram would make a phone retransmit; the server must absorb or answer
//! each retransmission exactly as a full transaction would.

mod common;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

struct Ua {
    sock: UdpSocket,
    server: SocketAddr,
    user: &'static str,
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    headers(msg, name).into_iter().next()
}

fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

impl Ua {
    fn new(server: SocketAddr, user: &'static str) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Ua { sock, server, user }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.server).unwrap();
    }

    fn recv(&self, what: &str) -> String {
        let mut buf = [0u8; 65535];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{}: nothing received, expected {what}: {e}", self.user));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Receives until a message whose first line starts with `start`
    /// (provisional responses on the way are skipped).
    fn recv_starting(&self, start: &str) -> String {
        for _ in 0..5 {
            let m = self.recv(start);
            if m.starts_with(start) {
                return m;
            }
            assert!(
                m.starts_with("SIP/2.0 1"),
                "{}: expected {start}, got:\n{m}",
                self.user
            );
        }
        panic!("{}: no {start}", self.user);
    }

    fn expect_silence(&self, why: &str) {
        self.sock
            .set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        let mut buf = [0u8; 65535];
        if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            panic!(
                "{}: {why}, yet received:\n{}",
                self.user,
                String::from_utf8_lossy(&buf[..n])
            );
        }
        self.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
    }

    fn register(&self) {
        let local = self.local();
        let user = self.user;
        let req = |n: u32, auth: &str| {
            format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r{n}-{user}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=r{user}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: reg-{user}@test\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 300\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        self.send(&req(1, ""));
        let r = self.recv("401");
        assert!(r.starts_with("SIP/2.0 401 "), "{r}");
        let a = answer_challenge(
            &r,
            "WWW-Authenticate",
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            user,
            "c0ffee",
        );
        self.send(&req(2, &format!("Authorization: {a}\r\n")));
        let r = self.recv("200");
        assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    }

    /// Calls 2000 as 1000: INVITE, the 407 (and its ACK), the INVITE again
    /// with credentials. Returns that INVITE, for retransmitting it.
    fn invite_2000(&self, call_id: &str, tag: &str, branch: &str) -> String {
        let a = self.local();
        let invite = |cseq: u32, branch: &str, auth: &str| {
            format!(
                "INVITE sip:2000@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag={tag}\r\nTo: <sip:2000@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1000@{a}>\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        let first = format!("{branch}-1");
        self.send(&invite(1, &first, ""));
        let r = self.recv("407");
        assert!(r.starts_with("SIP/2.0 407 "), "{r}");
        self.ack(call_id, tag, &first, 1, header(&r, "To").unwrap());
        let auth = answer_challenge(
            &r,
            "Proxy-Authenticate",
            "INVITE",
            &format!("sip:2000@{DOMAIN}"),
            "1000",
            call_id,
        );
        let second = invite(
            2,
            &format!("{branch}-2"),
            &format!("Proxy-Authorization: {auth}\r\n"),
        );
        self.send(&second);
        second
    }

    /// The ACK of a non-2xx final to the INVITE sent with `branch`.
    fn ack(&self, call_id: &str, tag: &str, branch: &str, cseq: u32, to: &str) {
        let a = self.local();
        self.send(&format!(
            "ACK sip:2000@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    /// A response to `req` with `code`, as a UAS sends it.
    fn answer(&self, req: &str, code: u16, reason: &str, to_tag: &str) -> String {
        let mut m = format!("SIP/2.0 {code} {reason}\r\n");
        for v in headers(req, "Via") {
            m.push_str(&format!("Via: {v}\r\n"));
        }
        for rr in headers(req, "Record-Route") {
            m.push_str(&format!("Record-Route: {rr}\r\n"));
        }
        let to = header(req, "To").unwrap();
        let to = if to.contains(";tag=") {
            to.to_string()
        } else {
            format!("{to};tag={to_tag}")
        };
        m.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{}@{}>\r\nContent-Length: 0\r\n\r\n",
            header(req, "From").unwrap(),
            header(req, "Call-ID").unwrap(),
            header(req, "CSeq").unwrap(),
            self.user,
            self.local()
        ));
        m
    }
}

#[test]
fn retransmissions_after_the_final_response_are_absorbed_or_answered() {
    let s = Server::start("linger", "");
    let callee = Ua::new(s.addr(), "2000");
    let caller = Ua::new(s.addr(), "1000");
    callee.register();
    let a = caller.local();
    let call_id = "linger-call@test";
    // INVITE, 407 (stateless), ACK, INVITE with credentials.
    let invite2 = caller.invite_2000(call_id, "caller1", "z9hG4bK-inv");
    let trying = caller.recv("100 Trying");
    assert!(trying.starts_with("SIP/2.0 100 "), "{trying}");

    // The callee rings and answers.
    let inv_b = callee.recv_starting("INVITE ");
    let ringing = callee.answer(&inv_b, 180, "Ringing", "callee1");
    callee.send(&ringing);
    let ok = callee.answer(&inv_b, 200, "OK", "callee1");
    callee.send(&ok);
    let ok_a = caller.recv_starting("SIP/2.0 200 ");
    assert_eq!(header(&ok_a, "CSeq"), Some("2 INVITE"), "{ok_a}");

    // A retransmitted INVITE after the 200 is absorbed (RFC 6026 Accepted):
    // nothing back to the caller, nothing on to the callee.
    caller.send(&invite2);
    caller.expect_silence("a retransmitted INVITE after the 200 must be absorbed");
    callee.expect_silence("a retransmitted INVITE must not be forwarded again");

    // A retransmitted 200 (the callee missed the ACK) is relayed upstream.
    callee.send(&ok);
    let again = caller.recv("the retransmitted 200");
    assert!(again.starts_with("SIP/2.0 200 "), "{again}");
    assert_eq!(header(&again, "CSeq"), Some("2 INVITE"), "{again}");

    // ACK and BYE follow the route set (Record-Route, reversed).
    let routes: Vec<String> = headers(&ok_a, "Record-Route")
        .into_iter()
        .rev()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let routes = routes.concat();
    let to_b = header(&ok_a, "To").unwrap().to_string();
    let contact_b = header(&ok_a, "Contact")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    let in_dialog = |method: &str, branch: &str, cseq: u32| {
        format!(
            "{method} {contact_b} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch={branch};rport\r\n{routes}Max-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=caller1\r\nTo: {to_b}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    caller.send(&in_dialog("ACK", "z9hG4bK-ack2", 2));
    let ack_b = callee.recv_starting("ACK ");
    assert!(ack_b.contains(call_id), "{ack_b}");

    let bye = in_dialog("BYE", "z9hG4bK-bye3", 3);
    caller.send(&bye);
    let bye_b = callee.recv_starting("BYE ");
    let bye_ok = callee.answer(&bye_b, 200, "OK", "callee1");
    callee.send(&bye_ok);
    let r = caller.recv("200 to BYE");
    assert!(r.starts_with("SIP/2.0 200 "), "{r}");
    assert_eq!(header(&r, "CSeq"), Some("3 BYE"), "{r}");

    // A retransmitted BYE gets the same 200 from the server (Timer J), and
    // the callee does not see it again.
    caller.send(&bye);
    let r2 = caller.recv("the 200 to the retransmitted BYE");
    assert_eq!(r2, r, "the final response is resent byte for byte");
    callee.expect_silence("a retransmitted BYE must not be forwarded again");
    // A retransmitted 200 to the BYE is absorbed (Timer K).
    callee.send(&bye_ok);
    caller.expect_silence("a retransmitted 200 to BYE must be absorbed");

    // Nothing is live any more; the four transactions of the call (INVITE
    // and BYE, each a server and a client side) linger as remnants.
    let m = s.metrics();
    assert!(m.contains("hardline_transactions_active 0"), "{m}");
    assert!(m.contains("hardline_transactions_lingering 4"), "{m}");
    assert!(m.contains("hardline_transactions_evicted_total 0"), "{m}");
}

/// With room for a single remnant per side, older ones make way for newer
/// ones (and are counted); calls keep working.
#[test]
fn a_full_linger_table_evicts_instead_of_refusing() {
    let s = Server::start("linger-cap", "[limits]\nmax_lingering = 1\n");
    let callee = Ua::new(s.addr(), "2000");
    callee.register();
    let caller = Ua::new(s.addr(), "1000");
    for n in 1..=3u32 {
        let call_id = format!("cap-{n}@test");
        let tag = format!("c{n}");
        let branch = format!("z9hG4bK-cap{n}");
        caller.invite_2000(&call_id, &tag, &branch);
        let inv_b = callee.recv_starting("INVITE ");
        callee.send(&callee.answer(&inv_b, 486, "Busy Here", "busy"));
        // The ACK of the non-2xx goes hop by hop.
        let ack = callee.recv_starting("ACK ");
        assert!(ack.contains(&call_id), "{ack}");
        let r = caller.recv_starting("SIP/2.0 486 ");
        assert!(r.contains(&call_id), "{r}");
        let to = header(&r, "To").unwrap();
        caller.ack(&call_id, &tag, &format!("{branch}-2"), 2, to);
    }
    std::thread::sleep(Duration::from_millis(200));
    let m = s.metrics();
    assert!(m.contains("hardline_transactions_active 0"), "{m}");
    assert!(m.contains("hardline_transactions_lingering 2"), "{m}");
    assert!(m.contains("hardline_transactions_evicted_total 4"), "{m}");
}
