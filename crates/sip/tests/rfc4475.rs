//! Walks the whole RFC 4475 torture-test corpus and checks each message is
//! handled the way `INDEX.tsv` says. Every row must be covered.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use sip::header::{Contact, HeaderName};
use sip::message::Message;
use sip::parse::{error_response, parse_datagram, ErrorKind, ParseError};
use sip::uri::Uri;
use sip::Limits;

fn corpus_dir() -> PathBuf {
    match std::env::var_os("HARDLINE_RFC4475_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/rfc4475"
        )),
    }
}

struct Row {
    file: String,
    class: String,
}

fn load() -> (PathBuf, Vec<Row>) {
    let dir = corpus_dir();
    assert!(
        dir.is_dir(),
        "RFC 4475 corpus directory {} is missing (set HARDLINE_RFC4475_DIR)",
        dir.display()
    );
    let index = dir.join("INDEX.tsv");
    let text = std::fs::read_to_string(&index)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", index.display()));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 4, "malformed INDEX.tsv row: {l:?}");
            Row {
                file: cols[0].to_owned(),
                class: cols[2].to_owned(),
            }
        })
        .collect();
    assert!(!rows.is_empty(), "INDEX.tsv has no rows");
    (dir, rows)
}

fn read(dir: &std::path::Path, name: &str) -> Bytes {
    let p = dir.join(format!("{name}.sip"));
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
}

fn ok(name: &str, buf: &Bytes) -> Message {
    let m = parse_datagram(buf.clone(), &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: expected to parse, got {e:?}"));
    // Every valid message must survive print -> parse with the same key fields.
    let printed = m.to_bytes();
    let again = parse_datagram(printed.clone(), &Limits::default()).unwrap_or_else(|e| {
        panic!("{name}: re-parse of printed message failed: {e:?}\n{printed:?}")
    });
    assert_eq!(m.call_id(), again.call_id(), "{name}");
    assert_eq!(m.cseq(), again.cseq(), "{name}");
    assert_eq!(m.body(), again.body(), "{name}");
    assert_eq!(m.status(), again.status(), "{name}");
    assert_eq!(m.from_tag(), again.from_tag(), "{name}");
    m
}

/// A request that must be refused with `status`; the error reply must be
/// buildable (every corpus request has a Via).
fn rejected(name: &str, buf: &Bytes, status: u16) -> ParseError {
    let e = match parse_datagram(buf.clone(), &Limits::default()) {
        Ok(_) => panic!("{name}: expected rejection with {status}, but it parsed"),
        Err(e) => e,
    };
    assert_eq!(e.status(), Some(status), "{name}: wrong status for {e:?}");
    println!("  {name}: {e}");
    let reply = error_response(buf, &e, &Limits::default())
        .unwrap_or_else(|| panic!("{name}: no error response built for {e:?}"));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with(&format!("SIP/2.0 {status} ")),
        "{name}: bad reply {text}"
    );
    e
}

fn silent(name: &str, buf: &Bytes) {
    match parse_datagram(buf.clone(), &Limits::default()) {
        Ok(_) => panic!("{name}: expected silent discard, but it parsed"),
        Err(e) => {
            assert_eq!(e.status(), None, "{name}: must not be answered: {e:?}");
            assert!(
                error_response(buf, &e, &Limits::default()).is_none(),
                "{name}"
            );
        }
    }
}

fn check(dir: &std::path::Path, row: &Row) -> &'static str {
    let name = row.file.as_str();
    let buf = read(dir, name);
    match (name, row.class.as_str()) {
        ("dblreq", "valid") => {
            let m = ok(name, &buf);
            assert_eq!(m.method().map(|m| m.as_str()), Some("REGISTER"));
            assert_eq!(m.body(), b"", "bytes after Content-Length must be ignored");
            "parsed, first request only"
        }
        ("esc01", "valid") => {
            let m = ok(name, &buf);
            let to = m.to().unwrap();
            assert!(to
                .uri
                .equivalent(&Uri::parse("sip:user@example.com").unwrap()));
            let c = m.contacts().next().unwrap().unwrap();
            let Contact::Addr(c) = c else {
                panic!("esc01 contact")
            };
            assert!(c.uri.equivalent(
                &Uri::parse("sip:caller@host5.example.net;lr;name=value%2541").unwrap()
            ));
            let from = m.from().unwrap();
            assert!(from.uri.as_sip().unwrap().user_eq("I have spaces"));
            let ruri = m.request_uri().unwrap();
            assert!(ruri.as_sip().unwrap().user_eq("sips:user@example.com"));
            "parsed, escapes compare equal"
        }
        ("escnull", "valid") => {
            let m = ok(name, &buf);
            let to = m.to().unwrap();
            assert_eq!(to.uri.as_sip().unwrap().user, Some("null-%00-null"));
            let users: Vec<_> = m
                .contacts()
                .map(|c| match c.unwrap() {
                    Contact::Addr(a) => a.uri.as_sip().unwrap().user.unwrap(),
                    Contact::Star => panic!("star"),
                })
                .collect();
            assert_eq!(users, ["%00", "%00%00"]);
            "parsed, %00 not truncated"
        }
        ("mpart01", "valid") => {
            let m = ok(name, &buf);
            let cl: usize = m
                .header(HeaderName::ContentLength)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(m.body().len(), cl);
            "parsed, body length == Content-Length"
        }
        ("wsinv", "valid") => {
            let m = ok(name, &buf);
            assert_eq!(m.to_tag(), Some("1918181833n"));
            assert_eq!(m.from_tag(), Some("98asjd8"));
            assert_eq!(m.max_forwards(), Some(68));
            assert_eq!(m.cseq().seq, 9);
            assert_eq!(m.vias().count(), 3);
            assert!(m.vias().all(|v| v.is_ok()));
            assert_eq!(m.top_via().unwrap().branch(), Some("390skdjuw"));
            assert_eq!(m.header(HeaderName::Subject), Some(""));
            "parsed"
        }
        ("intmeth", "valid") => {
            let m = ok(name, &buf);
            assert_eq!(
                m.method().unwrap().as_str(),
                "!interesting-Method0123456789_*+`.%indeed'~"
            );
            "parsed"
        }
        ("longreq", "valid") => {
            let m = ok(name, &buf);
            assert!(m.vias().count() > 10);
            "parsed"
        }
        ("transports", "valid") => {
            let m = ok(name, &buf);
            let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
            assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
            "parsed"
        }
        ("unreason" | "noreason", "valid") => {
            let m = ok(name, &buf);
            assert!(!m.is_request());
            if name == "noreason" {
                assert_eq!(m.reason(), Some(""));
            }
            "parsed"
        }
        ("badbranch", "valid") => {
            let m = ok(name, &buf);
            assert!(!m.top_via().unwrap().has_magic_cookie());
            "parsed, RFC 2543 branch"
        }
        ("inv2543", "valid") => {
            let m = ok(name, &buf);
            assert_eq!(m.top_via().unwrap().branch(), None);
            assert_eq!(m.max_forwards(), None);
            "parsed, RFC 2543 style"
        }
        (_, "valid") => {
            ok(name, &buf);
            "parsed"
        }
        ("badvers", "invalid") => {
            let e = rejected(name, &buf, 505);
            assert_eq!(e, ParseError::Request(ErrorKind::BadVersion));
            "505"
        }
        ("scalarlg" | "bigcode", "invalid") => {
            silent(name, &buf);
            "silently discarded"
        }
        ("baddate", "invalid") => {
            // Date is never needed, so accepting is allowed; must not crash.
            match parse_datagram(buf.clone(), &Limits::default()) {
                Ok(_) => "accepted (Date ignored)",
                Err(e) => {
                    assert_eq!(e.status(), Some(400), "{name}");
                    "400"
                }
            }
        }
        ("regbadct", "invalid") => {
            let m = ok(name, &buf);
            let from = m.from().unwrap();
            assert_eq!(from.tag(), Some("998332"));
            assert!(from.uri.as_sip().unwrap().params.is_empty());
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!("regbadct contact")
            };
            let u = c.uri.as_sip().unwrap();
            assert!(u.params.is_empty(), "URI must not get header params");
            assert_eq!(u.headers, Some("Route=%3Csip:sip.example.com%3E"));
            assert!(c.params.is_empty());
            "parsed, params belong to the header"
        }
        ("clerr", "invalid") => {
            let e = rejected(name, &buf, 400);
            assert_eq!(
                e,
                ParseError::Request(ErrorKind::BodyShorterThanContentLength)
            );
            "400"
        }
        ("mismatch01" | "mismatch02", "invalid") => {
            let e = rejected(name, &buf, 400);
            assert_eq!(e, ParseError::Request(ErrorKind::CSeqMethodMismatch));
            "400 CSeq mismatch"
        }
        (_, "invalid") => {
            rejected(name, &buf, 400);
            "400"
        }
        ("insuf", "semantic") => {
            let e = rejected(name, &buf, 400);
            assert!(
                matches!(e, ParseError::Request(ErrorKind::MissingHeader(_))),
                "{e:?}"
            );
            let reply = error_response(&buf, &e, &Limits::default()).unwrap();
            let text = String::from_utf8_lossy(&reply);
            assert!(text.starts_with("SIP/2.0 400 Missing "), "{text}");
            "400 naming the missing field"
        }
        ("multi01" | "mcl01", "semantic") => {
            let e = rejected(name, &buf, 400);
            assert!(
                matches!(e, ParseError::Request(ErrorKind::DuplicateHeader(_))),
                "{e:?}"
            );
            "400"
        }
        ("unkscm" | "novelsc", "semantic") => {
            let m = ok(name, &buf);
            assert!(matches!(m.request_uri().unwrap(), Uri::Other { .. }));
            "parsed, scheme exposed as Other"
        }
        ("unksm2", "semantic") => {
            let m = ok(name, &buf);
            assert!(matches!(m.to().unwrap().uri, Uri::Other { .. }));
            "parsed"
        }
        ("zeromf", "semantic") => {
            let m = ok(name, &buf);
            assert_eq!(m.max_forwards(), Some(0));
            "parsed, Max-Forwards 0 exposed"
        }
        ("bext01", "semantic") => {
            let m = ok(name, &buf);
            assert!(
                m.header_values(HeaderName::Require).count() > 0
                    || m.header_values(HeaderName::ProxyRequire).count() > 0
            );
            "parsed"
        }
        (_, "semantic") => {
            ok(name, &buf);
            "parsed"
        }
        (_, class) => panic!("{name}: unknown class {class:?} in INDEX.tsv"),
    }
}

#[test]
fn rfc4475_corpus() {
    let (dir, rows) = load();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for row in &rows {
        let r = std::panic::catch_unwind(|| check(&dir, row));
        match r {
            Ok(outcome) => {
                println!("{:<12} {:<9} {outcome}", row.file, row.class);
                *outcomes.entry(outcome).or_default() += 1;
            }
            Err(_) => failures.push(row.file.clone()),
        }
    }
    // Every .sip file in the directory must be listed, so nothing is skipped.
    let listed: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "sip") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                listed.contains(&stem.as_str()),
                "{stem}.sip is not in INDEX.tsv"
            );
        }
    }
    println!(
        "rfc4475: {} rows checked, {} passed, {} failed; {:?}",
        rows.len(),
        rows.len() - failures.len(),
        failures.len(),
        outcomes
    );
    assert!(failures.is_empty(), "RFC 4475 rows failed: {failures:?}");
}
