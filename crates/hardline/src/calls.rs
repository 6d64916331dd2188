//! Calls for operators: call records into the store and out of it
//! (`hardline cdr`: BESIP's table of time, from, to, MOS and codec; CSV;
//! JSON), and the calls in progress with their running MOS (`hardline
//! calls`), asked of the running server over a local control socket next
//! to the database.

use anyhow::{Context, Result};
use media::emodel::Score;
use media::relay::{Report, StreamReport};
use pbx::{CallRecord, LiveCall};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::{info, warn};

/// The control socket of the server using `db` (`hardline.db` →
/// `hardline.sock`).
pub fn control_path(db: &Path) -> PathBuf {
    db.with_extension("sock")
}

/// `2026-11-22T11:24:41.123Z` from unix milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    let s = crate::commands::utc((ms / 1000) as i64);
    // utc() gives "YYYY-MM-DD HH:MM:SSZ".
    format!("{}T{}.{:03}Z", &s[..10], &s[11..19], ms % 1000)
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One stream's statistics as `hardline cdr --format json` prints them.
pub fn stream_json(s: &StreamReport) -> Value {
    let (r, mos, kind) = match s.score {
        Score::Rated {
            r,
            mos,
            listening_only,
        } if s.packets > 0 => (
            Some(r3(r)),
            Some(r3(mos)),
            if listening_only {
                "listening"
            } else {
                "conversational"
            },
        ),
        Score::Rated { .. } => (None, None, "unrated"),
        Score::Unrated => (None, None, "unrated"),
    };
    json!({
        "stream": s.index,
        "direction": pbx::session::direction(s.side),
        "leg": s.side.as_str(),
        "codec": s.codec,
        "packets": s.packets,
        "expected": s.expected,
        "lost": s.lost,
        "loss_pct": r3(s.loss_pct),
        "duplicates": s.duplicates,
        "jitter_ms": r3(s.jitter_ms),
        "rtt_ms": s.rtt_ms.map(r3),
        "burst_ratio": r3(s.burst_ratio),
        "ptime_ms": s.ptime_ms,
        "relay_port": s.relay_port,
        "peer": s.peer.map(|p| p.to_string()),
        "r_factor": r,
        "mos": mos,
        "mos_kind": kind,
    })
}

fn streams_json(r: Option<&Report>) -> Value {
    Value::Array(
        r.map(|r| r.streams.iter().map(stream_json).collect())
            .unwrap_or_default(),
    )
}

/// The worst rated MOS of a call (what the table shows).
fn worst(r: Option<&Report>) -> Option<f64> {
    r.and_then(Report::worst_mos).map(r3)
}

/// A finished call for the store.
pub fn to_store(c: &CallRecord) -> store::CdrRecord {
    store::CdrRecord {
        call_id: c.call_id.clone(),
        caller: c.from.clone(),
        callee: c.to.clone(),
        caller_source: c.caller_source.clone(),
        callee_target: c.callee_target.clone(),
        started_at: c.started_ms as i64,
        answered_at: c.answered_ms.map(|a| a as i64),
        ended_at: c.ended_ms as i64,
        disposition: c.disposition.as_str().to_string(),
        status: c.status.map(i64::from),
        codec: c.codec.clone(),
        mos_milli: worst(c.report.as_ref()).map(|m| (m * 1000.0).round() as i64),
        streams: streams_json(c.report.as_ref()).to_string(),
    }
}

/// A stored record as `hardline cdr --format json` prints it.
pub fn record_json(c: &store::CdrRecord) -> Value {
    let streams: Value = serde_json::from_str(&c.streams).unwrap_or(Value::Array(vec![]));
    let ms = |t: i64| rfc3339_ms(t.max(0) as u64);
    json!({
        "call_id": c.call_id,
        "from": c.caller,
        "to": c.callee,
        "caller_source": c.caller_source,
        "callee_target": c.callee_target,
        "started_at": ms(c.started_at),
        "answered_at": c.answered_at.map(ms),
        "ended_at": ms(c.ended_at),
        "duration_secs": c.answered_at.map_or(0, |a| (c.ended_at - a).max(0) / 1000),
        "disposition": c.disposition,
        "status": c.status,
        "codec": c.codec,
        "mos": c.mos_milli.map(|m| m as f64 / 1000.0),
        "streams": streams,
    })
}

/// `--since`: a date (`2026-11-22`), a time (`2026-11-22T10:00:00Z` or with
/// a space), unix seconds, or an age (`90s`, `30m`, `2h`, `7d`). Unix ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64> {
    let s = s.trim();
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let mul = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return Ok(now_ms - n.saturating_mul(mul * 1000));
        }
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs * 1000);
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        let (y, m, d) = (num(0..4), num(5..7), num(8..10));
        let (hh, mm, ss) = if b.len() >= 19 && (b[10] == b'T' || b[10] == b' ') {
            (num(11..13), num(14..16), num(17..19))
        } else {
            (Some(0), Some(0), Some(0))
        };
        if let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) = (y, m, d, hh, mm, ss) {
            if (1..=12).contains(&m) && (1..=31).contains(&d) && hh < 24 && mm < 60 && ss < 61 {
                return Ok((days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss) * 1000);
            }
        }
    }
    anyhow::bail!(
        "--since {s:?}: expected a date (2026-11-22), a UTC time (2026-11-22T10:00:00Z), unix seconds, or an age (30m, 2h, 7d)"
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Records, oldest first, in `format`.
pub fn render_cdrs(records: &[store::CdrRecord], format: &str) -> Result<String> {
    let mut out = String::new();
    match format {
        "json" => {
            let all: Vec<Value> = records.iter().map(record_json).collect();
            out = serde_json::to_string_pretty(&Value::Array(all))?;
            out.push('\n');
        }
        "csv" => {
            out.push_str("call_id,started_at,answered_at,ended_at,duration_secs,from,to,disposition,status,codec,mos,caller_to_callee_mos,caller_to_callee_loss_pct,caller_to_callee_jitter_ms,callee_to_caller_mos,callee_to_caller_loss_pct,callee_to_caller_jitter_ms,rtt_ms\n");
            for c in records {
                let j = record_json(c);
                let dir = |d: &str, k: &str| -> String {
                    j["streams"]
                        .as_array()
                        .and_then(|a| a.iter().find(|s| s["direction"] == d && s["stream"] == 0))
                        .map(|s| match &s[k] {
                            Value::Null => String::new(),
                            v => v.to_string(),
                        })
                        .unwrap_or_default()
                };
                let rtt = dir("caller_to_callee", "rtt_ms");
                let row = [
                    csv_field(&c.call_id),
                    rfc3339_ms(c.started_at.max(0) as u64),
                    opt(c.answered_at.map(|a| rfc3339_ms(a.max(0) as u64))),
                    rfc3339_ms(c.ended_at.max(0) as u64),
                    j["duration_secs"].to_string(),
                    csv_field(&c.caller),
                    csv_field(&c.callee),
                    c.disposition.clone(),
                    opt(c.status),
                    csv_field(c.codec.as_deref().unwrap_or("")),
                    opt(c.mos_milli.map(|m| m as f64 / 1000.0)),
                    dir("caller_to_callee", "mos"),
                    dir("caller_to_callee", "loss_pct"),
                    dir("caller_to_callee", "jitter_ms"),
                    dir("callee_to_caller", "mos"),
                    dir("callee_to_caller", "loss_pct"),
                    dir("callee_to_caller", "jitter_ms"),
                    rtt,
                ];
                out.push_str(&row.join(","));
                out.push('\n');
            }
        }
        "table" => {
            // BESIP's view: time, from, to, MOS, codec.
            out.push_str(&format!(
                "{:<20} {:<28} {:<28} {:>5} {}\n",
                "TIME", "FROM", "TO", "MOS", "CODEC"
            ));
            for c in records {
                let t = crate::commands::utc(c.started_at / 1000);
                out.push_str(&format!(
                    "{:<20} {:<28} {:<28} {:>5} {}\n",
                    t.trim_end_matches('Z'),
                    clip(&c.caller, 28),
                    clip(&c.callee, 28),
                    c.mos_milli
                        .map(|m| format!("{:.2}", m as f64 / 1000.0))
                        .unwrap_or_else(|| "-".into()),
                    c.codec.as_deref().unwrap_or("-")
                ));
            }
            out.push_str(&format!("{} call(s)\n", records.len()));
        }
        other => anyhow::bail!("--format {other:?}: expected table, csv or json"),
    }
    Ok(out)
}

fn clip(s: &str, n: usize) -> String {
    let s = s.strip_prefix("sip:").unwrap_or(s);
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('~');
        t
    }
}

/// Live calls as JSON (what the control socket answers).
pub fn live_json(calls: &[LiveCall], now_ms: u64) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({
                    "call_id": c.call_id,
                    "from": c.from,
                    "to": c.to,
                    "state": if c.answered_ms.is_some() { "answered" } else { "ringing" },
                    "started_at": rfc3339_ms(c.started_ms),
                    "answered_at": c.answered_ms.map(rfc3339_ms),
                    "duration_secs": c.answered_ms.map_or(0, |a| now_ms.saturating_sub(a) / 1000),
                    "codec": c.codec,
                    "mos": worst(c.report.as_ref()),
                    "streams": streams_json(c.report.as_ref()),
                })
            })
            .collect(),
    )
}

/// Serves the control socket: one request line (`calls`), one JSON answer.
pub async fn control_task(rt: Arc<crate::server::Runtime>, path: PathBuf) {
    // A socket left by a server that died is in the way; a live server's
    // is not ours to take (the database lock already refused a second
    // server on the same database).
    let _ = std::fs::remove_file(&path);
    let lst = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "control socket unavailable: `hardline calls` will not work");
            return;
        }
    };
    // Only the server's own user (and root) may ask.
    crate::setup::set_private(&path, 0o600);
    info!(path = %path.display(), "control socket");
    loop {
        let Ok((conn, _)) = lst.accept().await else {
            continue;
        };
        let rt = rt.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = conn.into_split();
            let mut line = String::new();
            let mut rd = tokio::io::BufReader::new(rd).take(256);
            let read = tokio::time::timeout(Duration::from_secs(2), rd.read_line(&mut line)).await;
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let answer = match line.trim() {
                "calls" => {
                    let mut calls = Vec::new();
                    let mut now_ms = 0;
                    rt.with_core(|c, now| {
                        calls = c.live_calls();
                        now_ms = now.unix * 1000;
                    });
                    live_json(&calls, now_ms).to_string()
                }
                other => json!({ "error": format!("unknown request {other:?}") }).to_string(),
            };
            let _ = wr.write_all(answer.as_bytes()).await;
            let _ = wr.write_all(b"\n").await;
        });
    }
}

use tokio::io::AsyncReadExt as _;

/// Asks the running server (blocking; for the CLI).
pub fn ask(path: &Path, request: &str) -> Result<Value> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach the running server at {} (is `hardline serve` running with this config, as this user?)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    s.take(64 << 20).read_to_string(&mut out)?;
    Ok(serde_json::from_str(out.trim())?)
}

/// `hardline calls` as a table.
pub fn render_live(v: &Value) -> String {
    let mut out = format!(
        "{:<20} {:<24} {:<24} {:<9} {:>6} {:>5} {:<6} {}\n",
        "STARTED",
        "FROM",
        "TO",
        "STATE",
        "SECS",
        "MOS",
        "CODEC",
        "LOSS% (caller>callee / callee>caller)"
    );
    let calls = v.as_array().cloned().unwrap_or_default();
    for c in &calls {
        let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
        let loss = |d: &str| {
            c["streams"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["direction"] == d))
                .and_then(|x| x["loss_pct"].as_f64())
                .map(|l| format!("{l:.1}"))
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "{:<20} {:<24} {:<24} {:<9} {:>6} {:>5} {:<6} {} / {}\n",
            s("started_at").replace('T', " ").get(..19).unwrap_or(""),
            clip(&s("from"), 24),
            clip(&s("to"), 24),
            s("state"),
            c["duration_secs"].as_u64().unwrap_or(0),
            c["mos"]
                .as_f64()
                .map(|m| format!("{m:.2}"))
                .unwrap_or_else(|| "-".into()),
            c["codec"].as_str().unwrap_or("-"),
            loss("caller_to_callee"),
            loss("callee_to_caller"),
        ));
    }
    out.push_str(&format!("{} call(s) in progress\n", calls.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_dates_times_seconds_and_ages() {
        let now = 1_763_800_000_000;
        assert_eq!(parse_since("2026-11-22", now).unwrap(), 1_795_305_600_000);
        assert_eq!(
            parse_since("2026-11-22T10:00:00Z", now).unwrap(),
            1_795_305_600_000 + 36_000_000
        );
        assert_eq!(parse_since("1970-01-02 00:00:01", now).unwrap(), 86_401_000);
        assert_eq!(parse_since("1763800000", now).unwrap(), now);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("2026-13-01", now).is_err());
    }

    #[test]
    fn times_print_as_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_ms(86_401_234), "1970-01-02T00:00:01.234Z");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
