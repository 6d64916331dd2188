//! Incident reports to the administrator: a JSON document describing bans,
//! blocked users and throttled accounts, piped to a command and/or POSTed to
//! an http:// URL. At most one report per `MIN_INTERVAL`: what happens in
//! between is gathered into the next one, so a scan of a thousand sources
//! is a handful of reports, not a thousand.

use crate::commands::utc;
use shield::{Event, Unban};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Events listed in one report; the rest are counted.
const MAX_LISTED: usize = 200;

#[derive(Clone)]
pub struct Notifier {
    pub command: Option<PathBuf>,
    /// (host, port, path) of an http:// URL.
    pub url: Option<(String, u16, String)>,
    pub domain: String,
}

/// `http://host[:port][/path]` split; `None` for anything else.
pub fn parse_http_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            let port = match after {
                "" => 80,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (h, port)
        }
        None => match hostport.split_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (hostport, 80),
        },
    };
    (!host.is_empty()).then(|| (host.to_string(), port, path.to_string()))
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt_time(t: Option<u64>) -> String {
    t.map_or("null".to_string(), |t| json_str(&utc(t as i64)))
}

/// One event as a JSON object; `None` for events not worth a report.
pub fn event_json(e: &Event) -> Option<String> {
    Some(match e {
        Event::Banned(b) => format!(
            "{{\"event\":\"banned\",\"source\":{},\"rule\":{},\"offense\":{},\"since\":{},\"until\":{},\"evidence\":{}}}",
            json_str(&b.source.to_string()),
            json_str(b.rule.as_str()),
            b.offense,
            json_str(&utc(b.since as i64)),
            opt_time(b.until),
            json_str(&b.evidence)
        ),
        Event::Unbanned { why: Unban::Operator | Unban::Trusted, ban } => format!(
            "{{\"event\":\"unbanned\",\"source\":{},\"rule\":{}}}",
            json_str(&ban.source.to_string()),
            json_str(ban.rule.as_str())
        ),
        Event::Unbanned { .. } => return None,
        Event::UserBlocked {
            source,
            user,
            failures,
            until,
        } => format!(
            "{{\"event\":\"user_blocked\",\"source\":{},\"user\":{},\"failures\":{failures},\"until\":{}}}",
            json_str(&source.to_string()),
            json_str(user),
            opt_time(Some(*until))
        ),
        Event::AccountThrottled {
            user,
            failures,
            sources,
            until,
        } => format!(
            "{{\"event\":\"account_throttled\",\"user\":{},\"failures\":{failures},\"sources\":{sources},\"until\":{}}}",
            json_str(user),
            opt_time(Some(*until))
        ),
    })
}

impl Notifier {
    pub fn enabled(&self) -> bool {
        self.command.is_some() || self.url.is_some()
    }

    /// The report of `events` (JSON objects from [`event_json`]).
    pub fn report(&self, events: &[String], now: u64) -> String {
        let summary = format!(
            "hardline shield on {}: {} incident(s); `hardline ban list` and `hardline ban explain ADDR` tell more",
            self.domain,
            events.len()
        );
        self.report_with(&summary, events, now)
    }

    /// A report of `events` under `summary`.
    pub fn report_with(&self, summary: &str, events: &[String], now: u64) -> String {
        let listed = &events[..events.len().min(MAX_LISTED)];
        format!(
            "{{\"server\":{},\"time\":{},\"summary\":{},\"events\":[{}],\"not_listed\":{}}}\n",
            json_str(&self.domain),
            json_str(&utc(now as i64)),
            json_str(summary),
            listed.join(","),
            events.len() - listed.len()
        )
    }

    /// Sends `report` to the command and the URL; never fails the caller
    /// (problems are logged), each bounded in time.
    pub async fn deliver(&self, report: String) {
        self.deliver_kind(report, "shield").await
    }

    /// Sends `report`; the command sees `HARDLINE_EVENT=kind`.
    pub async fn deliver_kind(&self, report: String, kind: &'static str) {
        if let Some(cmd) = self.command.clone() {
            let body = report.clone();
            let res = tokio::task::spawn_blocking(move || run_command(&cmd, &body, kind)).await;
            match res {
                Ok(Ok(())) => info!("shield: incident report handed to shield.notify_command"),
                Ok(Err(e)) => warn!(error = %e, "shield: shield.notify_command failed"),
                Err(e) => warn!(error = %e, "shield: shield.notify_command failed"),
            }
        }
        if let Some((host, port, path)) = &self.url {
            let post = post(host, *port, path, &report);
            match tokio::time::timeout(Duration::from_secs(10), post).await {
                Ok(Ok(status)) if (200..300).contains(&status) => {
                    info!(
                        status,
                        "shield: incident report posted to shield.notify_url"
                    )
                }
                Ok(Ok(status)) => warn!(status, "shield: shield.notify_url refused the report"),
                Ok(Err(e)) => warn!(error = %e, "shield: posting to shield.notify_url failed"),
                Err(_) => warn!("shield: posting to shield.notify_url timed out"),
            }
        }
    }
}

/// Runs `cmd` with `body` on its standard input, killed after 10 s.
fn run_command(cmd: &PathBuf, body: &str, kind: &str) -> std::io::Result<()> {
    let mut child = Command::new(cmd)
        .env("HARDLINE_EVENT", kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input still runs.
        let _ = stdin.write_all(body.as_bytes());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait()? {
            return if st.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("exited with {st}")))
            };
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("killed after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 POST; returns the status code.
async fn post(host: &str, port: u16, path: &str, body: &str) -> std::io::Result<u16> {
    let mut s = tokio::net::TcpStream::connect((host, port)).await?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: hardline\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < buf.len() {
        let k = s.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
        if buf[..n].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shield::{Ban, Rule, SourceKey};

    #[test]
    fn urls() {
        assert_eq!(
            parse_http_url("http://hooks.example:8080/hardline?x=1"),
            Some(("hooks.example".into(), 8080, "/hardline?x=1".into()))
        );
        assert_eq!(
            parse_http_url("http://10.0.0.1"),
            Some(("10.0.0.1".into(), 80, "/".into()))
        );
        assert_eq!(
            parse_http_url("http://[::1]:9/h"),
            Some(("::1".into(), 9, "/h".into()))
        );
        assert_eq!(parse_http_url("https://x.example/"), None);
        assert_eq!(parse_http_url("http://:80/"), None);
    }

    #[test]
    fn report_is_json_with_the_evidence() {
        let n = Notifier {
            command: None,
            url: None,
            domain: "example.test".into(),
        };
        let ban = Ban {
            source: SourceKey::V4(0xcb00_7109),
            rule: Rule::Scanner,
            evidence: "scanner signature \"friendly-scanner\"\n".into(),
            since: 0,
            until: Some(3600),
            offense: 1,
        };
        let e = event_json(&Event::Banned(ban)).unwrap();
        let r = n.report(&[e], 60);
        assert!(r.contains("\"source\":\"203.0.113.9\""), "{r}");
        assert!(r.contains("\\\"friendly-scanner\\\"\\n"), "{r}");
        assert!(r.contains("\"until\":\"1970-01-01 01:00:00Z\""), "{r}");
        assert!(r.contains("\"not_listed\":0"));
        assert_eq!(json_str("a\u{1}b"), "\"a\\u0001b\"");
    }
}
