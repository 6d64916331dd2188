//! hardline: a hardened SIP registrar, proxy and PBX. This binary is the CLI
//! and the wiring; the logic lives in the library crates.

mod calls;
mod commands;
mod media_rt;
mod notify;
mod server;
mod setup;
mod shield_rt;
mod transport;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hardline",
    version,
    about = "A hardened SIP registrar, proxy and PBX"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server. Without --config: the embedded secure defaults
    /// (a config and data directory are created on first start).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file: exit 0, or 2 listing every problem.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage extensions (users) kept in the database.
    User {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// List the current registrations.
    Registrations {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The shield's bans: list, add, remove, explain.
    Ban {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: BanCmd,
    },
    /// Calls in progress with their running MOS (asks the running server).
    Calls {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// table or json
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Call records: time, from, to, MOS, codec (and everything else in
    /// csv and json).
    Cdr {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Calls started from then on: a date, a UTC time, unix seconds or
        /// an age (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// table, csv or json
        #[arg(long, default_value = "table")]
        format: String,
        /// The newest N records at most.
        #[arg(long, default_value_t = 10000)]
        limit: i64,
    },
    /// The host firewall generated from the configuration.
    Firewall {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: FirewallCmd,
    },
    /// Sources the shield never limits or bans, beyond shield.trusted.
    Trust {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        cmd: TrustCmd,
    },
}

#[derive(Subcommand)]
enum BanCmd {
    /// Bans in force, with rule, time and evidence.
    List,
    /// Ban a source (an IPv4 address or an IPv6 /64) by hand.
    Add {
        addr: String,
        /// Why (kept with the ban and shown by `ban explain`).
        #[arg(long)]
        reason: Option<String>,
        /// Length in seconds; without it the ban lasts until removed.
        #[arg(long = "for", value_name = "SECS")]
        secs: Option<u64>,
    },
    /// Lift a ban.
    Remove { addr: String },
    /// Why a source is (or was) banned: rule, evidence, times, history.
    Explain { addr: String },
}

#[derive(Subcommand)]
enum FirewallCmd {
    /// Print the nftables ruleset (exit 2 with the reason when the config
    /// cannot give a safe one).
    Render,
}

#[derive(Subcommand)]
enum TrustCmd {
    /// Trust an address, a CIDR prefix or a host name (re-resolved periodically).
    Add {
        entry: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Stop trusting an entry added with `trust add`.
    Remove { entry: String },
    /// Trusted entries, from the config and from the database.
    List,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an extension. Without --password a strong one is generated and printed once.
    Add {
        user: String,
        #[arg(long)]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List extensions.
    List,
    /// Remove an extension and its registrations.
    Remove { user: String },
    /// Set a new password. Without --password a strong one is generated and printed once.
    Passwd {
        user: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// glibc gives every thread that allocates its own arena (the database
/// threads do); each keeps its own free memory and fragments. One arena
/// shared by the few threads hardline has saves some 300 KB of idle memory;
/// the threads rarely allocate at the same moment.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists; mallopt only sets a
    // parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The build's x86-64 baseline includes SSSE3 (`.cargo/config.toml`); a CPU
/// without it would die on an illegal instruction in the parser, so say so
/// first. CPUID itself is baseline, and nothing before this uses SSSE3.
fn cpu_supported() -> Result<(), &'static str> {
    #[cfg(all(target_arch = "x86_64", target_feature = "ssse3"))]
    {
        // CPUID leaf 1, ECX bit 9: SSSE3.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU.
        let ecx = unsafe { std::arch::x86_64::__cpuid(1) }.ecx;
        if ecx & (1 << 9) == 0 {
            return Err("this build needs a CPU with SSSE3; rebuild with \
                 RUSTFLAGS=\" \" cargo build --release for this one");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = cpu_supported() {
        eprintln!("hardline: {e}");
        return ExitCode::from(1);
    }
    one_malloc_arena();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hardline: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // One `block_on` per command: the server's future does not share a
    // state machine (and its resident pages) with every CLI command.
    match cli.cmd {
        Cmd::Serve { config } => rt.block_on(commands::serve(config)),
        Cmd::CheckConfig { config } => commands::check_config(&config),
        Cmd::User { config, cmd } => {
            let action = match cmd {
                UserCmd::Add {
                    user,
                    password,
                    password_stdin,
                    display_name,
                } => commands::UserAction::Add {
                    user,
                    password: commands::password_arg(password, password_stdin),
                    display_name,
                },
                UserCmd::List => commands::UserAction::List,
                UserCmd::Remove { user } => commands::UserAction::Remove { user },
                UserCmd::Passwd {
                    user,
                    password,
                    password_stdin,
                } => commands::UserAction::Passwd {
                    user,
                    password: commands::password_arg(password, password_stdin),
                },
            };
            rt.block_on(commands::user(config, action))
        }
        Cmd::Registrations { config } => rt.block_on(commands::registrations(config)),
        Cmd::Ban { config, cmd } => {
            let action = match cmd {
                BanCmd::List => commands::BanAction::List,
                BanCmd::Add { addr, reason, secs } => {
                    commands::BanAction::Add { addr, reason, secs }
                }
                BanCmd::Remove { addr } => commands::BanAction::Remove { addr },
                BanCmd::Explain { addr } => commands::BanAction::Explain { addr },
            };
            rt.block_on(commands::ban(config, action))
        }
        Cmd::Calls { config, format } => commands::calls(config, &format),
        Cmd::Cdr {
            config,
            since,
            format,
            limit,
        } => rt.block_on(commands::cdr(config, since, &format, limit)),
        Cmd::Firewall {
            config,
            cmd: FirewallCmd::Render,
        } => commands::firewall_render(config),
        Cmd::Trust { config, cmd } => {
            let action = match cmd {
                TrustCmd::Add { entry, note } => commands::TrustAction::Add { entry, note },
                TrustCmd::Remove { entry } => commands::TrustAction::Remove { entry },
                TrustCmd::List => commands::TrustAction::List,
            };
            rt.block_on(commands::trust(config, action))
        }
    }
}
