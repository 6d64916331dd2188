//! The CLI commands. Exit codes: 0 success, 1 runtime failure, 2 bad
//! configuration or usage (naming the key and the fix).

use crate::{server, setup};
use anyhow::{Context, Result};
use mgmt::Config;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub enum UserAction {
    Add {
        user: String,
        password: PasswordArg,
        display_name: Option<String>,
    },
    List,
    Remove {
        user: String,
    },
    Passwd {
        user: String,
        password: PasswordArg,
    },
}

pub enum PasswordArg {
    Given(String),
    Stdin,
    Generate,
}

pub fn password_arg(p: Option<String>, stdin: bool) -> PasswordArg {
    match (p, stdin) {
        (Some(p), _) => PasswordArg::Given(p),
        (None, true) => PasswordArg::Stdin,
        (None, false) => PasswordArg::Generate,
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!(
            "hardline: {} is not a valid configuration:\n{e}",
            path.display()
        );
        ExitCode::from(2)
    })
}

/// The config to use when `--config` is absent: the one written by the first
/// `hardline serve` on the embedded defaults.
fn resolve_config(config: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    if let Some(c) = config {
        return Ok(c);
    }
    let p = setup::default_home().join(setup::CONFIG_FILE);
    if p.exists() {
        Ok(p)
    } else {
        eprintln!(
            "hardline: no --config given and no {} yet; run `hardline serve` once or pass --config FILE",
            p.display()
        );
        Err(ExitCode::from(2))
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("hardline: {e:#}");
    ExitCode::from(1)
}

pub async fn serve(config: Option<PathBuf>) -> ExitCode {
    let path = match config {
        Some(p) => p,
        None => match setup::first_start() {
            Ok(p) => p,
            Err(e) => return fail(e),
        },
    };
    let cfg = match load_config(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    setup::init_logging(&cfg);
    match server::serve(path, cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            fail(e)
        }
    }
}

pub fn check_config(path: &Path) -> ExitCode {
    match load_config(path) {
        Ok(cfg) => {
            if let Err(e) = setup::load_zones(&cfg) {
                eprintln!("hardline: {}: {e:#}", path.display());
                return ExitCode::from(2);
            }
            println!(
                "{}: ok (domain {}, {} listener(s), {} extension(s))",
                path.display(),
                cfg.sip.domain,
                cfg.sip.listen.len(),
                cfg.extensions.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn read_password(arg: PasswordArg) -> Result<(String, bool)> {
    match arg {
        PasswordArg::Given(p) => Ok((p, false)),
        PasswordArg::Stdin => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
        }
        PasswordArg::Generate => Ok((setup::generate_password(), true)),
    }
}

pub async fn user(config: Option<PathBuf>, action: UserAction) -> ExitCode {
    let path = match resolve_config(config) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let cfg = match load_config(&path) {
        Ok(c) => c,
        Err(c) => return c,
    };
    match user_inner(&cfg, action).await {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

async fn user_inner(cfg: &Config, action: UserAction) -> Result<ExitCode> {
    let store = setup::open_store(cfg).await?;
    let in_config = |u: &str| cfg.extensions.iter().any(|e| e.user == u);
    let code = match action {
        UserAction::List => {
            let users = store.users_list().await?;
            println!("{:<16} {:<24} SOURCE", "USER", "DISPLAY NAME");
            for u in users {
                let src = if in_config(&u.username) {
                    "config"
                } else {
                    "database"
                };
                println!(
                    "{:<16} {:<24} {}",
                    u.username,
                    u.display_name.as_deref().unwrap_or("-"),
                    src
                );
            }
            ExitCode::SUCCESS
        }
        UserAction::Add {
            user,
            password,
            display_name,
        } => {
            if let Err(msg) = setup::validate_username(&user) {
                eprintln!("hardline: user {user:?}: {msg}");
                return Ok(ExitCode::from(2));
            }
            if in_config(&user) {
                eprintln!("hardline: user {user} is defined in the config file ([[extensions]]); change it there");
                return Ok(ExitCode::from(2));
            }
            if store.user_get(&user).await?.is_some() {
                eprintln!("hardline: user {user} exists; use `hardline user passwd {user}`");
                return Ok(ExitCode::from(2));
            }
            let (pw, generated) = read_password(password)?;
            if let Err(msg) = setup::validate_password(&pw) {
                eprintln!("hardline: password for {user}: {msg}");
                return Ok(ExitCode::from(2));
            }
            let rec = setup::user_record(&cfg.sip.domain, &user, &pw, display_name);
            store.user_upsert(&rec).await.context("storing the user")?;
            if generated {
                println!(
                    "added {user} with password {pw}  (shown once: only its hashes are stored)"
                );
            } else {
                println!("added {user}");
            }
            ExitCode::SUCCESS
        }
        UserAction::Remove { user } => {
            if in_config(&user) {
                eprintln!("hardline: user {user} is defined in the config file; remove it there");
                return Ok(ExitCode::from(2));
            }
            if store.user_remove(&user).await? {
                println!("removed {user}");
                ExitCode::SUCCESS
            } else {
                eprintln!("hardline: no user {user}");
                ExitCode::from(1)
            }
        }
        UserAction::Passwd { user, password } => {
            if in_config(&user) {
                eprintln!("hardline: user {user} is defined in the config file; change its password there");
                return Ok(ExitCode::from(2));
            }
            let Some(existing) = store.user_get(&user).await? else {
                eprintln!("hardline: no user {user}");
                return Ok(ExitCode::from(1));
            };
            let (pw, generated) = read_password(password)?;
            if let Err(msg) = setup::validate_password(&pw) {
                eprintln!("hardline: password for {user}: {msg}");
                return Ok(ExitCode::from(2));
            }
            let mut rec = setup::user_record(&cfg.sip.domain, &user, &pw, existing.display_name);
            rec.created_at = existing.created_at;
            store.user_upsert(&rec).await?;
            if generated {
                println!("new password for {user}: {pw}  (shown once)");
            } else {
                println!("password changed for {user}");
            }
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

pub async fn registrations(config: Option<PathBuf>) -> ExitCode {
    let path = match resolve_config(config) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let cfg = match load_config(&path) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let run = async {
        let store = setup::open_store(&cfg).await?;
        let now = server::now().unix as i64;
        let list = store.bindings_load(now).await?;
        println!("{:<12} {:<8} {:<28} CONTACT", "USER", "EXPIRES", "SOURCE");
        for b in &list {
            println!(
                "{:<12} {:<8} {:<28} {}",
                b.aor,
                b.expires_at - now,
                b.source,
                b.contact
            );
        }
        println!("{} registration(s)", list.len());
        store.close().await;
        anyhow::Ok(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// `hardline firewall render`: the ruleset on stdout.
pub fn firewall_render(config: Option<PathBuf>) -> ExitCode {
    let cfg = match resolve_config(config).and_then(|p| load_config(&p)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match shield::firewall::render(&cfg.firewall) {
        Ok(r) => {
            print!("{r}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hardline: no safe firewall from this configuration: {e}");
            ExitCode::from(2)
        }
    }
}

/// `hardline calls`: asks the running server.
pub fn calls(config: Option<PathBuf>, format: &str) -> ExitCode {
    let cfg = match resolve_config(config).and_then(|p| load_config(&p)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if format != "table" && format != "json" {
        eprintln!("hardline: --format {format:?}: expected table or json");
        return ExitCode::from(2);
    }
    let path = crate::calls::control_path(&cfg.storage.path);
    match crate::calls::ask(&path, "calls") {
        Ok(v) if format == "json" => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", crate::calls::render_live(&v));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `hardline cdr`: call records from the store, oldest first.
pub async fn cdr(
    config: Option<PathBuf>,
    since: Option<String>,
    format: &str,
    limit: i64,
) -> ExitCode {
    let format = format.to_string();
    with_store(config, async move |_cfg, store, now| {
        let since = match &since {
            Some(s) => crate::calls::parse_since(s, now * 1000)?,
            None => 0,
        };
        let mut records = store.cdrs_since(since, limit.max(1)).await?;
        records.reverse();
        print!("{}", crate::calls::render_cdrs(&records, &format)?);
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub enum BanAction {
    List,
    Add {
        addr: String,
        reason: Option<String>,
        secs: Option<u64>,
    },
    Remove {
        addr: String,
    },
    Explain {
        addr: String,
    },
}

pub enum TrustAction {
    Add { entry: String, note: Option<String> },
    Remove { entry: String },
    List,
}

/// `2026-11-22 11:24:41Z` from Unix seconds (UTC; days to civil date after
/// Howard Hinnant's algorithm).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Runs `f` with the config, its store and the time; closes the store
/// whatever `f` returns.
async fn with_store(
    config: Option<PathBuf>,
    f: impl AsyncFnOnce(&Config, &store::Store, i64) -> Result<ExitCode>,
) -> ExitCode {
    let cfg = match resolve_config(config).and_then(|p| load_config(&p)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match setup::open_store(&cfg).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let res = f(&cfg, &store, server::now().unix as i64).await;
    store.close().await;
    res.unwrap_or_else(fail)
}

fn parse_source(addr: &str) -> Result<shield::SourceKey, ExitCode> {
    addr.parse::<shield::SourceKey>().map_err(|e| {
        eprintln!(
            "hardline: {e} (an IPv4 address, or an IPv6 address or /64: IPv6 is banned by /64)"
        );
        ExitCode::from(2)
    })
}

pub async fn ban(config: Option<PathBuf>, action: BanAction) -> ExitCode {
    with_store(config, async |cfg, store, now| {
        Ok(match action {
            BanAction::List => {
                let bans = store.bans_load().await?;
                let active: Vec<_> = bans
                    .iter()
                    .filter(|b| b.until.is_none_or(|u| u > now))
                    .collect();
                println!(
                    "{:<22} {:<15} {:<21} {:<21} {:>3}  EVIDENCE",
                    "SOURCE", "RULE", "SINCE", "UNTIL", "#"
                );
                for b in &active {
                    println!(
                        "{:<22} {:<15} {:<21} {:<21} {:>3}  {}",
                        b.source,
                        b.rule,
                        utc(b.since),
                        b.until.map_or("until removed".to_string(), utc),
                        b.offense,
                        b.evidence
                    );
                }
                println!("{} ban(s) in force", active.len());
                let pending = store.ban_requests().await?;
                if !pending.is_empty() {
                    println!(
                        "{} request(s) waiting for the server (applied within seconds while it runs)",
                        pending.len()
                    );
                }
                ExitCode::SUCCESS
            }
            BanAction::Add { addr, reason, secs } => {
                let key = match parse_source(&addr) {
                    Ok(k) => k,
                    Err(c) => return Ok(c),
                };
                if cfg.shield.config.trusted.iter().any(|c| c.contains(key.addr())) {
                    eprintln!("hardline: {key} is in shield.trusted; remove it there to ban it");
                    return Ok(ExitCode::from(2));
                }
                let secs = secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
                store
                    .ban_request(store::BanAction::Ban, &key.to_string(), reason.as_deref().unwrap_or(""), secs, now)
                    .await?;
                println!(
                    "ban of {key} queued ({}); the running server applies it within seconds, or at its next start",
                    secs.map_or("until removed".to_string(), |s| format!("{s} s"))
                );
                ExitCode::SUCCESS
            }
            BanAction::Remove { addr } => {
                let key = match parse_source(&addr) {
                    Ok(k) => k,
                    Err(c) => return Ok(c),
                };
                store
                    .ban_request(store::BanAction::Unban, &key.to_string(), "", None, now)
                    .await?;
                println!("removal of the ban of {key} queued; the running server applies it within seconds");
                ExitCode::SUCCESS
            }
            BanAction::Explain { addr } => {
                let key = match parse_source(&addr) {
                    Ok(k) => k,
                    Err(c) => return Ok(c),
                };
                let name = key.to_string();
                println!("source: {name}");
                let trusted_cfg = cfg.shield.config.trusted.iter().find(|c| c.contains(key.addr()));
                let trusted_db = store
                    .trusted_list()
                    .await?
                    .into_iter()
                    .find(|t| t.entry.parse::<shield::Cidr>().is_ok_and(|c| c.contains(key.addr())));
                match (trusted_cfg, &trusted_db) {
                    (Some(c), _) => println!("trusted: yes (shield.trusted {c}): never banned"),
                    (None, Some(t)) => println!("trusted: yes (hardline trust {}): never banned", t.entry),
                    (None, None) => println!("trusted: no"),
                }
                match store.bans_load().await?.into_iter().find(|b| b.source == name) {
                    Some(b) if b.until.is_none_or(|u| u > now) => {
                        println!("banned: yes, by rule {} (offense {})", b.rule, b.offense);
                        println!("evidence: {}", b.evidence);
                        println!("since: {}", utc(b.since));
                        match b.until {
                            Some(u) => println!("until: {} ({} s left)", utc(u), u - now),
                            None => println!("until: removed by an operator (`hardline ban remove {name}`)"),
                        }
                    }
                    _ => println!("banned: no"),
                }
                let events = store.ban_events(Some(&name), 20).await?;
                if !events.is_empty() {
                    println!("history (newest first):");
                    for e in events {
                        let detail = if e.detail.is_empty() { String::new() } else { format!(": {}", e.detail) };
                        println!("  {}  {} ({}){}", utc(e.at), e.event, e.rule, detail);
                    }
                }
                ExitCode::SUCCESS
            }
        })
    })
    .await
}

pub async fn trust(config: Option<PathBuf>, action: TrustAction) -> ExitCode {
    with_store(config, async |cfg, store, now| {
        Ok(match action {
            TrustAction::List => {
                println!("{:<40} {:<10} {:<21} NOTE", "ENTRY", "FROM", "ADDED");
                for c in &cfg.shield.config.trusted {
                    println!("{:<40} {:<10} {:<21} -", c.to_string(), "config", "-");
                }
                for t in store.trusted_list().await? {
                    println!("{:<40} {:<10} {:<21} {}", t.entry, "database", utc(t.added_at), t.note);
                }
                ExitCode::SUCCESS
            }
            TrustAction::Add { entry, note } => {
                let entry = match normalise_trusted(&entry) {
                    Ok(e) => e,
                    Err(msg) => {
                        eprintln!("hardline: {msg}");
                        return Ok(ExitCode::from(2));
                    }
                };
                store.trusted_add(&entry, note.as_deref().unwrap_or(""), now).await?;
                println!("{entry} trusted: never rate-limited or banned, and any ban of it is lifted (within seconds while the server runs)");
                ExitCode::SUCCESS
            }
            TrustAction::Remove { entry } => {
                let entry = normalise_trusted(&entry).unwrap_or(entry);
                if store.trusted_remove(&entry).await? {
                    println!("{entry} no longer trusted");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("hardline: {entry} is not in the trusted list of the database (entries of shield.trusted are changed in the config file)");
                    ExitCode::from(1)
                }
            }
        })
    })
    .await
}

/// An address or prefix in canonical form, or a host name (resolved by the
/// server, re-resolved every few minutes).
fn normalise_trusted(entry: &str) -> Result<String, String> {
    let e = entry.trim();
    if let Ok(c) = e.parse::<shield::Cidr>() {
        return Ok(c.to_string());
    }
    let host_ok = !e.is_empty()
        && e.len() <= 253
        && e.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && e.bytes().any(|b| b.is_ascii_alphabetic());
    if host_ok {
        Ok(e.to_ascii_lowercase())
    } else {
        match e.parse::<shield::Cidr>() {
            Err(err) if e.contains('/') || e.parse::<std::net::IpAddr>().is_ok() => {
                Err(err.to_string())
            }
            _ => Err(format!(
                "{e:?} is not an address, a CIDR prefix or a host name"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_795_346_681), "2026-11-22 11:24:41Z");
    }

    #[test]
    fn trusted_entries() {
        assert_eq!(normalise_trusted("192.0.2.0/24").unwrap(), "192.0.2.0/24");
        assert_eq!(normalise_trusted(" 2001:DB8::1 ").unwrap(), "2001:db8::1");
        assert_eq!(
            normalise_trusted("SIP.Provider.example").unwrap(),
            "sip.provider.example"
        );
        assert!(normalise_trusted("192.0.2.1/24")
            .unwrap_err()
            .contains("192.0.2.0/24"));
        assert!(normalise_trusted("not a host").is_err());
        assert!(normalise_trusted("-bad.example").is_err());
    }
}
