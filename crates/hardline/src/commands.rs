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
