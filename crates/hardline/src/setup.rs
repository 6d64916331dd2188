//! Start-up plumbing: the embedded defaults written on first start, the
//! store, config-defined users, the persistent nonce secret, logging, and
//! mapping the config model onto the core's settings.

use anyhow::{Context, Result};
use mgmt::{Config, Credential, Transport as CfgTransport};
use pbx::io::Transport;
use pbx::CoreConfig;
use rand::Rng;
use sip::auth::{ha1, Algorithm};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::{Store, StoreOptions, UserRecord};
use tracing::{info, warn};

pub const CONFIG_FILE: &str = "hardline.toml";
const SECRET_KEY: &str = "nonce_secret";

/// Where `hardline serve` without `--config` keeps its config and data:
/// `$HARDLINE_HOME`, else `/var/lib/hardline` for root, else
/// `$XDG_DATA_HOME/hardline` (or `~/.local/share/hardline`).
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("HARDLINE_HOME") {
        return PathBuf::from(h);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/hardline");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("hardline");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/hardline")
}

/// First start on the embedded defaults: writes a config with a few
/// extensions whose strong random passwords are printed once (only their
/// HA1 hashes are written), listening on loopback only.
pub fn first_start() -> Result<PathBuf> {
    let home = default_home();
    let path = home.join(CONFIG_FILE);
    if path.exists() {
        eprintln!("hardline: using {}", path.display());
        return Ok(path);
    }
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    set_private(&home, 0o700);
    let domain = default_domain();
    let mut exts = Vec::new();
    let mut shown = Vec::new();
    for user in ["1000", "1001", "1002"] {
        let pw = generate_password();
        exts.push((
            user.to_string(),
            ha1(Algorithm::Md5, user, &domain, &pw),
            ha1(Algorithm::Sha256, user, &domain, &pw),
        ));
        shown.push((user, pw));
    }
    let listen: Vec<mgmt::Listen> = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let text = mgmt::default_config_text(&domain, &listen, "hardline.db", &exts);
    // Never write a config the server itself would refuse.
    mgmt::Config::parse(&text, &home)
        .map_err(|e| anyhow::anyhow!("generated config is invalid: {e}"))?;
    write_atomic(&path, text.as_bytes())?;
    set_private(&path, 0o600);
    println!("hardline: first start, wrote {}", path.display());
    println!(
        "  domain {domain}, listening on {} (loopback only until you change sip.listen)",
        listen
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  extensions (passwords are shown once; only their hashes are stored):");
    for (u, pw) in shown {
        println!("    {u}  {pw}");
    }
    Ok(path)
}

fn default_domain() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if host.contains('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        host.to_ascii_lowercase()
    } else {
        "localhost".to_string()
    }
}

fn write_atomic(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

pub fn set_private(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// 20 characters from a 62-symbol alphabet: ~119 bits, beyond any guessing.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn validate_username(u: &str) -> Result<(), &'static str> {
    if u.is_empty() || u.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    if !u
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()+".contains(&b))
    {
        return Err("use letters, digits and - _ . ! ~ * ' ( ) + only");
    }
    Ok(())
}

pub fn validate_password(p: &str) -> Result<(), &'static str> {
    if p.chars().count() < 12 {
        return Err("too short: at least 12 characters (or omit --password to generate one)");
    }
    Ok(())
}

pub fn user_record(domain: &str, user: &str, pw: &str, display_name: Option<String>) -> UserRecord {
    UserRecord {
        username: user.to_string(),
        ha1_md5: ha1(Algorithm::Md5, user, domain, pw),
        ha1_sha256: ha1(Algorithm::Sha256, user, domain, pw),
        display_name,
        created_at: crate::server::now().unix as i64,
    }
}

pub async fn open_store(cfg: &Config) -> Result<Store> {
    let opts = StoreOptions::default();
    Store::open_sqlite(&cfg.storage.path, opts)
        .await
        .with_context(|| {
            format!(
                "opening the database {} (storage.path)",
                cfg.storage.path.display()
            )
        })
}

/// Config-defined extensions are written into the user table on every start
/// and reload, so the server and the CLI read users from one place.
pub async fn sync_config_users(store: &Store, cfg: &Config) -> Result<()> {
    let mut existing: std::collections::HashMap<String, UserRecord> = store
        .users_list()
        .await?
        .into_iter()
        .map(|u| (u.username.clone(), u))
        .collect();
    let mut changed = Vec::new();
    for e in &cfg.extensions {
        let (md5, sha) = match &e.credential {
            Credential::Password(pw) => (
                ha1(Algorithm::Md5, &e.user, &cfg.sip.domain, pw),
                ha1(Algorithm::Sha256, &e.user, &cfg.sip.domain, pw),
            ),
            Credential::Ha1 { md5, sha256 } => (
                md5.clone().unwrap_or_default(),
                sha256.clone().unwrap_or_default(),
            ),
        };
        let existing = existing.remove(&e.user);
        if existing
            .as_ref()
            .is_some_and(|u| u.ha1_md5 == md5 && u.ha1_sha256 == sha)
        {
            continue;
        }
        let rec = UserRecord {
            username: e.user.clone(),
            ha1_md5: md5,
            ha1_sha256: sha,
            display_name: existing.as_ref().and_then(|u| u.display_name.clone()),
            created_at: existing
                .map(|u| u.created_at)
                .unwrap_or(crate::server::now().unix as i64),
        };
        changed.push(rec);
    }
    store.users_upsert(&changed).await?;
    Ok(())
}

/// The nonce secret persists so nonces issued before a restart stay valid.
pub async fn load_or_create_secret(store: &Store) -> Result<[u8; 32]> {
    if let Some(hexs) = store.meta_get(SECRET_KEY).await? {
        if let Ok(v) = hex::decode(hexs.trim()) {
            if let Ok(arr) = <[u8; 32]>::try_from(v.as_slice()) {
                return Ok(arr);
            }
        }
        warn!("stored nonce secret is malformed, generating a new one");
    }
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill(&mut s);
    store.meta_set(SECRET_KEY, &hex::encode(s)).await?;
    info!("generated a new nonce secret");
    Ok(s)
}

pub fn listen_parts(l: &mgmt::Listen) -> (Transport, SocketAddr) {
    let t = match l.transport {
        CfgTransport::Udp => Transport::Udp,
        CfgTransport::Tcp => Transport::Tcp,
    };
    (t, l.addr)
}

pub fn metrics_addr(cfg: &Config) -> Option<SocketAddr> {
    cfg.metrics.listen_addr()
}

/// The prefixes of every blocked country's zone file. An unreadable or
/// malformed file stops start-up (and fails `check-config`), naming it.
pub fn load_zones(cfg: &Config) -> Result<Vec<shield::Cidr>> {
    let mut out = Vec::new();
    for path in cfg.shield.zone_files() {
        let cidrs = shield::net::load_zone(&path).with_context(|| {
            format!(
                "shield.blocked_countries needs {} (ipdeny format: one prefix per line)",
                path.display()
            )
        })?;
        info!(zone = %path.display(), prefixes = cidrs.len(), "shield: country blocklist loaded");
        out.extend(cidrs);
    }
    Ok(out)
}

/// The recordings of `[[media.announcements]]`, read once; a file that
/// cannot be played stops start-up (or a reload), naming itself.
pub fn load_announcements(cfg: &Config) -> Result<Vec<(String, Arc<media::wav::Audio>, bool)>> {
    let mut out = Vec::new();
    for (i, a) in cfg.media.announcements.iter().enumerate() {
        let bytes = std::fs::read(&a.file).with_context(|| {
            format!(
                "media.announcements[{i}].file: cannot read {}",
                a.file.display()
            )
        })?;
        let audio = media::wav::Audio::from_wav(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "media.announcements[{i}].file: {} cannot be played: {e}",
                a.file.display()
            )
        })?;
        info!(number = %a.number, file = %a.file.display(), frames = audio.frames(), "announcement loaded");
        out.push((a.number.clone(), Arc::new(audio), a.looped));
    }
    Ok(out)
}

pub fn core_config(
    cfg: &Config,
    locals: &[(Transport, SocketAddr)],
    secret: [u8; 32],
    zones: Arc<Vec<shield::Cidr>>,
    announcements: Vec<(String, Arc<media::wav::Audio>, bool)>,
) -> CoreConfig {
    let algs = cfg
        .sip
        .auth_algorithms
        .iter()
        .map(|a| match a {
            mgmt::DigestAlgorithm::Md5 => Algorithm::Md5,
            mgmt::DigestAlgorithm::Sha256 => Algorithm::Sha256,
        })
        .collect::<Vec<_>>();
    CoreConfig {
        domain: cfg.sip.domain.clone(),
        local_addrs: locals.to_vec(),
        auth_algorithms: algs,
        strict_digest_uri: cfg.sip.strict_digest_uri,
        nonce_lifetime_secs: cfg.sip.nonce_lifetime_secs,
        server_header: cfg.sip.server_header,
        timers: sip::transaction::Timers {
            t1: cfg.sip.t1(),
            t2: cfg.sip.t2(),
            t4: cfg.sip.t4(),
        },
        min_expires: cfg.registrar.min_expires,
        max_expires: cfg.registrar.max_expires,
        default_expires: cfg.registrar.default_expires,
        max_contacts: cfg.registrar.max_contacts_per_user as usize,
        limits: cfg.limits.clone(),
        secret,
        shield: cfg.shield.config.clone(),
        shield_zones: zones,
        media: pbx::MediaConfig {
            enabled: cfg.media.enabled,
            address: cfg.media.address,
            echo: cfg.media.echo.clone(),
            announcements,
        },
    }
}

pub fn init_logging(cfg: &Config) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // `Targets` ("info", "hardline=debug,warn", ...) rather than EnvFilter:
    // the same syntax for what operators set, without a regex engine in the
    // binary (it must fit a small router).
    let spec = std::env::var("HARDLINE_LOG").unwrap_or_default();
    let targets = spec
        .parse::<tracing_subscriber::filter::Targets>()
        .ok()
        .filter(|_| !spec.trim().is_empty())
        .unwrap_or_else(|| {
            if !spec.trim().is_empty() {
                eprintln!("hardline: HARDLINE_LOG={spec:?} is not a valid filter; using log.level");
            }
            tracing_subscriber::filter::Targets::new().with_default(
                cfg.log
                    .level
                    .as_str()
                    .parse::<tracing::Level>()
                    .unwrap_or(tracing::Level::INFO),
            )
        })
        // The database driver logs every statement at debug: keep it quiet.
        .with_target("sqlx", tracing::Level::WARN);
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(targets)
        .try_init();
}

pub fn set_socket_buffers(sock: &std::net::UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: fd is a valid open socket and v outlives the call.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
