use super::*;

const BASE: &str = "/etc/hardline";

/// Smallest valid file.
const MIN: &str = r#"
[sip]
listen = ["udp:127.0.0.1:5060"]
domain = "example.test"
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new(BASE))
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

/// All errors as `(path, message)`.
fn errors(text: &str) -> Vec<(String, String)> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => {
            assert!(!e.errors.is_empty());
            e.errors.into_iter().map(|e| (e.path, e.message)).collect()
        }
    }
}

/// Asserts that exactly one error was reported, at `path`, containing `msg`.
fn one_error(text: &str, path: &str, msg: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    assert_eq!(errs[0].0, path, "{errs:#?}");
    assert!(
        errs[0].1.contains(msg),
        "{:?} does not contain {msg:?}",
        errs[0].1
    );
}

/// MIN with `extra` appended (extra sections / keys).
fn with(extra: &str) -> String {
    format!("{MIN}\n{extra}\n")
}

/// `extra` top-level keys followed by MIN.
fn top(extra: &str) -> String {
    format!("{extra}\n{MIN}")
}

/// A `[sip]` section with the given listen array body and domain.
fn sip(listen: &str, domain: &str) -> String {
    format!("[sip]\nlisten = [{listen}]\ndomain = {domain:?}\n")
}

#[test]
fn minimal_config_gets_secure_defaults() {
    let c = ok(MIN);
    assert_eq!(
        c.sip.listen,
        vec![Listen {
            transport: Transport::Udp,
            addr: "127.0.0.1:5060".parse().unwrap()
        }]
    );
    assert_eq!(c.sip.domain, "example.test");
    assert_eq!(
        c.sip.auth_algorithms,
        vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
    );
    assert!(!c.sip.strict_digest_uri);
    assert!(!c.sip.server_header);
    assert_eq!(c.sip.nonce_lifetime_secs, 300);
    assert_eq!((c.sip.t1_ms, c.sip.t2_ms, c.sip.t4_ms), (500, 4000, 5000));
    assert_eq!(c.sip.t1(), Duration::from_millis(500));
    assert_eq!(c.storage.path, Path::new("/etc/hardline/hardline.db"));
    assert_eq!(c.registrar, RegistrarConfig::default());
    assert_eq!(c.registrar.min_expires, 60);
    assert_eq!(c.registrar.max_expires, 3600);
    assert_eq!(c.registrar.default_expires, 3600);
    assert_eq!(c.registrar.max_contacts_per_user, 10);
    assert_eq!(limit_values(&c.limits), limit_values(&Limits::default()));
    assert_eq!(
        c.metrics.listen_addr(),
        Some("127.0.0.1:9099".parse().unwrap())
    );
    assert!(!c.metrics.allow_remote);
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(c.extensions.is_empty());
    // The shield is on, with its defaults, without a [shield] section.
    assert_eq!(c.shield.config, shield::ShieldConfig::default());
    assert!(c.shield.config.enabled);
    assert!(c.shield.blocked_countries.is_empty());
    assert_eq!(c.shield.zone_dir, Path::new("/etc/hardline/zones"));
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let c = ok(EXAMPLE_CONFIG);
    assert_eq!(c.sip.listen.len(), 2);
    assert_eq!(c.extensions.len(), 2);
    assert_eq!(
        c.extensions[0].credential,
        Credential::Password("a-long-secret".into())
    );
    assert!(matches!(
        &c.extensions[1].credential,
        Credential::Ha1 {
            md5: Some(_),
            sha256: Some(_)
        }
    ));
    // The active values in the example are the defaults.
    assert_eq!(c.registrar, RegistrarConfig::default());
    assert_eq!(c.metrics, MetricsConfig::default());
    assert_eq!(c.log, LogConfig::default());
    assert_eq!(c.shield.config, shield::ShieldConfig::default());
    assert_eq!(c.sip.nonce_lifetime_secs, 300);
    for key in LIMIT_KEYS {
        assert!(
            EXAMPLE_CONFIG.contains(&format!("# {key} = ")),
            "{key} not documented"
        );
    }
}

#[test]
fn example_limits_comments_show_the_real_defaults() {
    // Uncommenting the documented [limits] lines must change nothing.
    let text: String = EXAMPLE_CONFIG
        .lines()
        .map(|l| {
            l.strip_prefix("# max_")
                .map_or(l.to_owned(), |r| format!("max_{r}"))
        })
        .map(|l| {
            l.strip_prefix("# stream_")
                .map_or(l.clone(), |r| format!("stream_{r}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let uncommented = text
        .lines()
        .filter(|l| l.contains(" = ") && l.contains("  # "))
        .count();
    assert_eq!(uncommented, LIMIT_KEYS.len(), "{text}");
    let c = ok(&text);
    assert_eq!(limit_values(&c.limits), limit_values(&Limits::default()));
}

#[test]
fn limit_keys_cover_every_field_of_sip_limits() {
    // Field names from the derived Debug output: catches a field added to
    // `sip::Limits` without a config key (or a key for a removed field).
    let dbg = format!("{:?}", Limits::default());
    let inner = dbg
        .split_once('{')
        .and_then(|(_, r)| r.rsplit_once('}'))
        .map(|(i, _)| i)
        .expect("Limits derives Debug as a struct");
    let mut fields: Vec<&str> = inner
        .split(", ")
        .filter_map(|f| f.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    let mut keys = LIMIT_KEYS.to_vec();
    fields.sort_unstable();
    keys.sort_unstable();
    assert_eq!(fields, keys);
}

#[test]
fn limits_override_defaults_and_are_range_checked() {
    let c = ok(&with(
        "[limits]\nmax_via = 5\nmax_connections = 99\nmax_connections_per_source = 7",
    ));
    let v: HashMap<_, _> = limit_values(&c.limits).into_iter().collect();
    assert_eq!(v["max_via"], 5);
    assert_eq!(v["max_connections"], 99);
    assert_eq!(v["max_connections_per_source"], 7);
    assert_eq!(c.limits.max_via, 5);

    one_error(
        &with("[limits]\nmax_via = 0"),
        "limits.max_via",
        "must be between 1 and 100, got 0",
    );
    one_error(
        &with("[limits]\nmax_message_bytes = 100000000"),
        "limits.max_message_bytes",
        "must be between 512 and 1048576",
    );
    one_error(&with("[limits]\nmax_via = -1"), "limits.max_via", "got -1");
    one_error(
        &with("[limits]\nmax_via = \"5\""),
        "limits.max_via",
        "expected an integer, got a string",
    );
    one_error(
        &with("[limits]\nmax_via = 5.0"),
        "limits.max_via",
        "expected an integer, got a float",
    );
}

#[test]
fn limits_cross_checks() {
    one_error(
        &with("[limits]\nmax_connections = 10\nmax_connections_per_source = 11"),
        "limits.max_connections_per_source",
        "must not exceed limits.max_connections (10), got 11",
    );
    one_error(
        &with("[limits]\nmax_message_bytes = 1000\nmax_header_bytes = 900\nmax_body_bytes = 1001\nmax_uri_bytes = 100"),
        "limits.max_body_bytes",
        "must not exceed limits.max_message_bytes (1000), got 1001",
    );
    one_error(
        &with("[limits]\nmax_header_bytes = 100\nmax_uri_bytes = 200"),
        "limits.max_uri_bytes",
        "must not exceed limits.max_header_bytes (100), got 200",
    );
    // A rejected value must not cause a second, derived error.
    let errs = errors(&with(
        "[limits]\nmax_connections = 0\nmax_connections_per_source = 5",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn listen_ipv4_ipv6_and_transports() {
    let c = ok(&sip(
        r#""udp:127.0.0.1:5060", "tcp:[::1]:5070", "UDP:[2001:db8::1]:5060", "tcp:0.0.0.0:5060""#,
        "example.test",
    ));
    let l = &c.sip.listen;
    assert_eq!(l[1].transport, Transport::Tcp);
    assert_eq!(l[1].addr, "[::1]:5070".parse::<SocketAddr>().unwrap());
    assert!(l[1].addr.is_ipv6());
    assert_eq!(l[2].transport, Transport::Udp);
    assert_eq!(l[2].addr.ip(), "2001:db8::1".parse::<IpAddr>().unwrap());
    assert_eq!(l[1].to_string(), "tcp:[::1]:5070");
    assert_eq!(l[1].to_string().parse::<Listen>().unwrap(), l[1]);
    // Same address on both transports is fine; they are different sockets.
    ok(&sip(
        r#""udp:127.0.0.1:5060", "tcp:127.0.0.1:5060""#,
        "example.test",
    ));
}

#[test]
fn listen_errors() {
    one_error(
        &sip(r#""udp:127.0.0.1:5060", "foo""#, "example.test"),
        "sip.listen[1]",
        r#"expected "udp:HOST:PORT" or "tcp:HOST:PORT", got "foo""#,
    );
    one_error(
        &sip(r#""sctp:127.0.0.1:5060""#, "example.test"),
        "sip.listen[0]",
        r#"unsupported transport "sctp" (expected udp or tcp)"#,
    );
    one_error(
        &sip(r#""udp:localhost:5060""#, "example.test"),
        "sip.listen[0]",
        r#"expected an IP address and port after "udp:""#,
    );
    one_error(
        &sip(r#""udp:::1:5060""#, "example.test"),
        "sip.listen[0]",
        "IP address and port",
    );
    one_error(
        &sip(r#""udp:127.0.0.1""#, "example.test"),
        "sip.listen[0]",
        "IP address and port",
    );
    one_error(
        &sip(r#""udp:127.0.0.1:70000""#, "example.test"),
        "sip.listen[0]",
        "IP address and port",
    );
    one_error(
        &sip(r#"5060"#, "example.test"),
        "sip.listen[0]",
        "expected a string, got an integer",
    );
    one_error(
        &sip(
            r#""udp:127.0.0.1:5060", "tcp:[::1]:5060", "udp:127.0.0.1:5060""#,
            "example.test",
        ),
        "sip.listen[2]",
        "duplicate of sip.listen[0] (udp:127.0.0.1:5060)",
    );
    one_error(
        &sip("", "example.test"),
        "sip.listen",
        "at least one listen address is required",
    );
    one_error(
        "[sip]\nlisten = \"udp:127.0.0.1:5060\"\ndomain = \"example.test\"\n",
        "sip.listen",
        "expected an array, got a string",
    );
    one_error(
        "[sip]\ndomain = \"example.test\"\n",
        "sip.listen",
        "missing required key",
    );
}

#[test]
fn missing_sip_section() {
    one_error("", "sip", "missing required section [sip]");
    one_error(
        "sip = 1\n",
        "sip",
        "expected a table ([sip]), got an integer",
    );
}

#[test]
fn domain_checks() {
    for good in [
        "example.test",
        "localhost",
        "sip-1.example.com",
        "192.0.2.1",
        "[2001:db8::1]",
    ] {
        ok(&sip(r#""udp:127.0.0.1:5060""#, good));
    }
    let l = r#""udp:127.0.0.1:5060""#;
    one_error(&sip(l, ""), "sip.domain", "must not be empty");
    one_error(
        &sip(l, "sip:example.test"),
        "sip.domain",
        "without a scheme",
    );
    one_error(
        &sip(l, "https://example.test"),
        "sip.domain",
        "without a scheme",
    );
    one_error(
        &sip(l, "example.test:5060"),
        "sip.domain",
        "must not include a port",
    );
    one_error(
        &sip(l, "[::1]:5060"),
        "sip.domain",
        "must not include a port",
    );
    one_error(
        &sip(l, "alice@example.test"),
        "sip.domain",
        "without a user part",
    );
    one_error(
        &sip(l, "2001:db8::1"),
        "sip.domain",
        "IPv6 addresses must be in brackets",
    );
    one_error(
        &sip(l, "[not-ip]"),
        "sip.domain",
        "not a valid IPv6 reference",
    );
    for bad in [
        "exa mple.test",
        "-a.test",
        "a..test",
        "example.test.",
        "1.2.3",
        "a_b.test",
    ] {
        one_error(&sip(l, bad), "sip.domain", "not a valid host name");
    }
    one_error(
        &sip(l, &format!("{}.test", "a".repeat(64))),
        "sip.domain",
        "not a valid host name",
    );
    one_error(
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n",
        "sip.domain",
        "missing required key",
    );
    one_error(
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = [\"a\"]\n",
        "sip.domain",
        "expected a string, got an array",
    );
}

#[test]
fn auth_algorithms() {
    let c = ok(&with_sip_keys("auth_algorithms = [\"SHA-256\", \"md5\"]"));
    assert_eq!(
        c.sip.auth_algorithms,
        vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
    );
    one_error(
        &with_sip_keys("auth_algorithms = []"),
        "sip.auth_algorithms",
        "at least one algorithm is required",
    );
    one_error(
        &with_sip_keys("auth_algorithms = [\"MD5\", \"SHA-512-256\"]"),
        "sip.auth_algorithms[1]",
        "unsupported algorithm \"SHA-512-256\" (supported: MD5, SHA-256)",
    );
    one_error(
        &with_sip_keys("auth_algorithms = [\"MD5\", \"MD5\"]"),
        "sip.auth_algorithms[1]",
        "duplicate algorithm MD5",
    );
    one_error(
        &with_sip_keys("auth_algorithms = [true]"),
        "sip.auth_algorithms[0]",
        "expected a string, got a boolean",
    );
    one_error(
        &with_sip_keys("auth_algorithms = \"MD5\""),
        "sip.auth_algorithms",
        "expected an array",
    );
}

/// MIN's [sip] with extra keys in it.
fn with_sip_keys(keys: &str) -> String {
    format!("[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"example.test\"\n{keys}\n")
}

#[test]
fn sip_scalars_and_timers() {
    let c = ok(&with_sip_keys(
        "strict_digest_uri = true\nserver_header = true\nnonce_lifetime_secs = 60\nt1_ms = 100\nt2_ms = 100\nt4_ms = 1000",
    ));
    assert!(c.sip.strict_digest_uri && c.sip.server_header);
    assert_eq!(c.sip.nonce_lifetime(), Duration::from_secs(60));
    assert_eq!((c.sip.t1_ms, c.sip.t2_ms, c.sip.t4_ms), (100, 100, 1000));

    one_error(
        &with_sip_keys("strict_digest_uri = \"yes\""),
        "sip.strict_digest_uri",
        "expected a boolean, got a string",
    );
    one_error(
        &with_sip_keys("nonce_lifetime_secs = 0"),
        "sip.nonce_lifetime_secs",
        "must be between 10 and 3600, got 0",
    );
    one_error(
        &with_sip_keys("t1_ms = 100000"),
        "sip.t1_ms",
        "must be between 10 and 10000",
    );
    one_error(
        &with_sip_keys("t4_ms = 0"),
        "sip.t4_ms",
        "must be between 100 and 60000",
    );
    one_error(
        &with_sip_keys("t1_ms = 2000\nt2_ms = 1000"),
        "sip.t2_ms",
        "must be at least sip.t1_ms (2000), got 1000",
    );
    one_error(
        &with_sip_keys("t2_ms = 400"),
        "sip.t2_ms",
        "must be at least sip.t1_ms (500), got 400",
    );
}

#[test]
fn registrar_checks() {
    let c = ok(&with("[registrar]\nmin_expires = 30\nmax_expires = 7200\ndefault_expires = 600\nmax_contacts_per_user = 3"));
    assert_eq!(
        c.registrar,
        RegistrarConfig {
            min_expires: 30,
            max_expires: 7200,
            default_expires: 600,
            max_contacts_per_user: 3
        }
    );
    one_error(
        &with("[registrar]\nmin_expires = 600\ndefault_expires = 300"),
        "registrar.default_expires",
        "must be between registrar.min_expires (600) and registrar.max_expires (3600), got 300",
    );
    one_error(
        &with("[registrar]\nmax_expires = 600"),
        "registrar.default_expires",
        "got 3600",
    );
    one_error(
        &with("[registrar]\nmin_expires = 7200\nmax_expires = 3600"),
        "registrar.min_expires",
        "must not exceed registrar.max_expires (3600), got 7200",
    );
    one_error(
        &with("[registrar]\nmin_expires = 0"),
        "registrar.min_expires",
        "between 1 and 86400",
    );
    one_error(
        &with("[registrar]\nmax_contacts_per_user = 0"),
        "registrar.max_contacts_per_user",
        "between 1 and 1000",
    );
    one_error(
        &top("registrar = []"),
        "registrar",
        "expected a table ([registrar]), got an array",
    );
}

#[test]
fn metrics_checks() {
    let c = ok(&with("[metrics]\nlisten = \"[::1]:9100\""));
    assert_eq!(c.metrics.listen_addr(), Some("[::1]:9100".parse().unwrap()));
    let c = ok(&with("[metrics]\nenabled = false"));
    assert_eq!(c.metrics.listen_addr(), None);
    let c = ok(&with(
        "[metrics]\nlisten = \"0.0.0.0:9099\"\nallow_remote = true",
    ));
    assert_eq!(
        c.metrics.listen_addr(),
        Some("0.0.0.0:9099".parse().unwrap())
    );
    // Disabled: the address is never bound, so it needs no permission.
    ok(&with(
        "[metrics]\nenabled = false\nlisten = \"192.0.2.1:9099\"",
    ));

    one_error(
        &with("[metrics]\nlisten = \"0.0.0.0:9099\""),
        "metrics.listen",
        "0.0.0.0:9099 is not a loopback address; set metrics.allow_remote = true",
    );
    one_error(
        &with("[metrics]\nlisten = \"[::]:9099\""),
        "metrics.listen",
        "not a loopback address",
    );
    one_error(
        &with("[metrics]\nlisten = \"localhost:9099\""),
        "metrics.listen",
        "expected an IP address and port like \"127.0.0.1:9099\"",
    );
    one_error(
        &with("[metrics]\nenabled = 1"),
        "metrics.enabled",
        "expected a boolean, got an integer",
    );
    one_error(
        &with("[metrics]\nallow_remote = \"true\""),
        "metrics.allow_remote",
        "expected a boolean",
    );
    one_error(
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:9099\"\n",
            sip(r#""tcp:127.0.0.1:9099""#, "example.test")
        ),
        "metrics.listen",
        "conflicts with sip.listen[0] (tcp:127.0.0.1:9099)",
    );
    one_error(
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:5060\"\n",
            sip(r#""tcp:0.0.0.0:5060""#, "example.test")
        ),
        "metrics.listen",
        "conflicts with sip.listen[0] (tcp:0.0.0.0:5060)",
    );
    one_error(
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:5060\"\n",
            sip(r#""tcp:[::]:5060""#, "example.test")
        ),
        "metrics.listen",
        "conflicts with sip.listen[0] (tcp:[::]:5060)",
    );
    // Distinct specific addresses on the same port can coexist.
    ok(&format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:5060\"\n",
        sip(r#""tcp:[::1]:5060""#, "example.test")
    ));
    // UDP on the same port is a different socket.
    ok(&sip(r#""udp:127.0.0.1:9099""#, "example.test"));
}

#[test]
fn log_checks() {
    let c = ok(&with("[log]\nlevel = \"DEBUG\"\nformat = \"text\""));
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.log.level.as_str(), "debug");
    one_error(
        &with("[log]\nlevel = \"verbose\""),
        "log.level",
        "expected one of \"error\"",
    );
    one_error(
        &with("[log]\nformat = \"json\""),
        "log.format",
        "JSON logging is not supported",
    );
    one_error(
        &with("[log]\nformat = \"xml\""),
        "log.format",
        "expected \"text\", got \"xml\"",
    );
    one_error(
        &with("[log]\nlevel = 3"),
        "log.level",
        "expected a string, got an integer",
    );
}

#[test]
fn storage_path_resolution() {
    let c = ok(&with("[storage]\npath = \"data/hl.db\""));
    assert_eq!(c.storage.path, Path::new("/etc/hardline/data/hl.db"));
    let c = ok(&with("[storage]\npath = \"../hl.db\""));
    assert_eq!(c.storage.path, Path::new("/etc/hardline/../hl.db"));
    let c = ok(&with("[storage]\npath = \"/var/lib/hardline/hl.db\""));
    assert_eq!(c.storage.path, Path::new("/var/lib/hardline/hl.db"));
    one_error(
        &with("[storage]\npath = \"\""),
        "storage.path",
        "must not be empty",
    );
    one_error(
        &with("[storage]\npath = \"a\\u0000b\""),
        "storage.path",
        "NUL",
    );
    one_error(
        &with("[storage]\npath = 1"),
        "storage.path",
        "expected a string, got an integer",
    );
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mgmt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_resolves_storage_against_the_file_directory() {
    let dir = TempDir::new("load");
    let file = dir.0.join("hardline.toml");
    std::fs::write(&file, with("[storage]\npath = \"db/hl.db\"")).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.storage.path, dir.0.join("db/hl.db"));
    assert!(c.storage.path.is_absolute());

    let e = Config::load(dir.0.join("missing.toml")).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert!(e.errors[0].path.ends_with("missing.toml"));
    assert!(
        e.errors[0].message.starts_with("cannot read config file"),
        "{e}"
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let e = parse("[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = example\n").unwrap_err();
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].path, "line 3, column 10");
    assert!(
        e.errors[0].message.starts_with("TOML syntax error: "),
        "{e}"
    );
    // Duplicate keys are a TOML error too, not silently last-wins.
    let e = parse(&with_sip_keys("domain = \"again.test\"")).unwrap_err();
    assert!(e.errors[0].path.starts_with("line 4, "), "{e}");
}

#[test]
fn unknown_keys_at_every_level() {
    let text = r#"
typo_top = 1
[sip]
listen = ["udp:127.0.0.1:5060"]
domain = "example.test"
listne = []
[storage]
pathh = "x.db"
[registrar]
min_expire = 1
[limits]
max_vias = 3
[metrics]
enable = false
[log]
levl = "info"
[[extensions]]
user = "1000"
password = "a-long-secret"
[[extensions]]
user = "1001"
password = "a-long-secret"
pasword = "x"
[sip.nested]
a = 1
"#;
    let errs = errors(text);
    let expect = [
        ("sip.listne", "unknown key (did you mean \"listen\"?)"),
        ("sip.nested", "unknown key"),
        ("storage.pathh", "unknown key (did you mean \"path\"?)"),
        (
            "registrar.min_expire",
            "unknown key (did you mean \"min_expires\"?)",
        ),
        ("limits.max_vias", "unknown key (did you mean \"max_via\"?)"),
        ("metrics.enable", "unknown key (did you mean \"enabled\"?)"),
        ("log.levl", "unknown key (did you mean \"level\"?)"),
        (
            "extensions[1].pasword",
            "unknown key (did you mean \"password\"?)",
        ),
        ("typo_top", "unknown key"),
    ];
    let got: Vec<(&str, &str)> = errs.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(got, expect);
}

#[test]
fn unknown_key_paths_quote_non_bare_keys() {
    one_error(&top("\"a b\" = 1"), "\"a b\"", "unknown key");
    one_error(
        &with("[storage]\n\"x.y\" = 1"),
        "storage.\"x.y\"",
        "unknown key",
    );
}

#[test]
fn many_errors_reported_at_once_with_paths() {
    let text = r#"
[sip]
listen = ["udp:127.0.0.1:5060", "foo"]
domain = "example.test:5060"
[storage]
pathh = "x.db"
[registrar]
min_expires = 0
[[extensions]]
user = "1000"
password = "a-long-secret"
[[extensions]]
user = "1000"
password = "a-long-secret"
[[extensions]]
user = "1002"
password = "short"
"#;
    let e = parse(text).unwrap_err();
    let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            r#"sip.listen[1]: expected "udp:HOST:PORT" or "tcp:HOST:PORT", got "foo""#,
            r#"sip.domain: must not include a port, got "example.test:5060""#,
            r#"storage.pathh: unknown key (did you mean "path"?)"#,
            "registrar.min_expires: must be between 1 and 86400, got 0",
            r#"extensions[1].user: duplicate user "1000" (first defined in extensions[0])"#,
            "extensions[2].password: too short (min 12 chars)",
        ]
    );
    assert_eq!(e.errors.len(), 6);
    assert_eq!(ConfigErrors::EXIT_CODE, 2);
}

fn ext(body: &str) -> String {
    with(&format!("[[extensions]]\n{body}"))
}

const MD5: &str = "5AD22BD8114062CCEEB2122677AFE222";
const SHA: &str = "71e5e01916ee9400358aa0328273cfafec50060ed7fecde4061d57c69b5b1d7d";

#[test]
fn extension_credentials() {
    let c = ok(&ext(&format!(
        "user = \"1001\"\nha1_md5 = {MD5:?}\nha1_sha256 = {SHA:?}"
    )));
    assert_eq!(
        c.extensions[0],
        ExtensionConfig {
            user: "1001".into(),
            credential: Credential::Ha1 {
                // Normalised to lower case.
                md5: Some(MD5.to_ascii_lowercase()),
                sha256: Some(SHA.into()),
            }
        }
    );
    let c = ok(&ext(
        "user = \"alice.smith-1\"\npassword = \"correct horse battery\"",
    ));
    assert_eq!(c.extensions[0].user, "alice.smith-1");

    one_error(
        &ext("user = \"1000\"\npassword = \"eleven-char\""),
        "extensions[0].password",
        "too short (min 12 chars)",
    );
    one_error(
        &ext(&format!(
            "user = \"1000\"\npassword = {:?}",
            "x".repeat(257)
        )),
        "extensions[0].password",
        "too long (max 256 chars)",
    );
    one_error(
        &ext("user = \"1000\"\npassword = \"twelve-chars\\tx\""),
        "extensions[0].password",
        "control characters",
    );
    one_error(
        &ext(&format!(
            "user = \"1000\"\npassword = \"a-long-secret\"\nha1_md5 = {MD5:?}"
        )),
        "extensions[0]",
        "give either password or ha1_md5/ha1_sha256, not both",
    );
    one_error(
        &ext("user = \"1000\""),
        "extensions[0]",
        "missing credential: set password, or ha1_md5 and/or ha1_sha256",
    );
    one_error(
        &ext(&format!(
            "user = \"1000\"\nha1_md5 = \"abc\"\nha1_sha256 = {SHA:?}"
        )),
        "extensions[0].ha1_md5",
        "expected 32 hex digits",
    );
    one_error(
        &ext(&format!(
            "user = \"1000\"\nha1_md5 = {MD5:?}\nha1_sha256 = {:?}",
            "g".repeat(64)
        )),
        "extensions[0].ha1_sha256",
        "expected 64 hex digits",
    );
    one_error(
        &ext("user = \"1000\"\npassword = 123456789012345"),
        "extensions[0].password",
        "expected a string, got an integer",
    );
}

#[test]
fn ha1_must_cover_every_offered_algorithm() {
    one_error(
        &ext(&format!("user = \"1000\"\nha1_md5 = {MD5:?}")),
        "extensions[0]",
        "ha1_sha256 missing while sip.auth_algorithms includes SHA-256",
    );
    one_error(
        &ext(&format!("user = \"1000\"\nha1_sha256 = {SHA:?}")),
        "extensions[0]",
        "ha1_md5 missing while sip.auth_algorithms includes MD5",
    );
    // Fine when only the algorithm it has is offered.
    let text = format!(
        "{}\n[[extensions]]\nuser = \"1000\"\nha1_md5 = {MD5:?}\n",
        with_sip_keys("auth_algorithms = [\"MD5\"]")
    );
    let c = ok(&text);
    assert_eq!(
        c.extensions[0].credential,
        Credential::Ha1 {
            md5: Some(MD5.to_ascii_lowercase()),
            sha256: None
        }
    );
}

#[test]
fn extension_users() {
    for bad in ["", "a b", "al%41ice", "x@y", "a:b", "\u{e9}"] {
        let errs = errors(&ext(&format!(
            "user = {bad:?}\npassword = \"a-long-secret\""
        )));
        assert_eq!(errs.len(), 1, "{bad:?}: {errs:?}");
        assert_eq!(errs[0].0, "extensions[0].user", "{bad:?}");
    }
    one_error(
        &ext(&format!(
            "user = {:?}\npassword = \"a-long-secret\"",
            "a".repeat(65)
        )),
        "extensions[0].user",
        "at most 64 chars",
    );
    one_error(
        &ext("password = \"a-long-secret\""),
        "extensions[0].user",
        "missing required key",
    );
    one_error(
        &ext("user = 1000\npassword = \"a-long-secret\""),
        "extensions[0].user",
        "expected a string",
    );
    // Case-sensitive, like the user part of a SIP URI.
    ok(&with("[[extensions]]\nuser = \"bob\"\npassword = \"a-long-secret\"\n[[extensions]]\nuser = \"Bob\"\npassword = \"a-long-secret\""));
}

#[test]
fn extensions_shape_errors() {
    one_error(
        &with("[extensions]\nuser = \"1000\""),
        "extensions",
        "expected an array, got a table",
    );
    one_error(
        &top("extensions = [1]"),
        "extensions[0]",
        "expected a table ([[extensions]] entry), got an integer",
    );
}

#[test]
fn debug_output_redacts_secrets() {
    let text = with(&format!(
        "[[extensions]]\nuser = \"1000\"\npassword = \"super-secret-password\"\n\
         [[extensions]]\nuser = \"1001\"\nha1_md5 = {MD5:?}\nha1_sha256 = {SHA:?}"
    ));
    let c = ok(&text);
    let dbg = format!("{c:?} {c:#?}");
    assert!(!dbg.contains("super-secret-password"), "{dbg}");
    assert!(
        !dbg.to_ascii_lowercase().contains(&MD5.to_ascii_lowercase()),
        "{dbg}"
    );
    assert!(!dbg.contains(SHA), "{dbg}");
    assert!(dbg.contains("Password(\"<redacted>\")"), "{dbg}");
    assert!(dbg.contains("1001"), "users are not secret: {dbg}");
}

#[test]
fn errors_never_echo_secrets() {
    let e = parse(&ext("user = \"1000\"\npassword = \"tiny-pw\"")).unwrap_err();
    assert!(!e.to_string().contains("tiny-pw"), "{e}");
    let e = parse(&ext("user = \"1000\"\nha1_md5 = \"0123456789abcdef\"")).unwrap_err();
    assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
}

#[test]
fn long_values_are_clipped_in_messages() {
    let long = format!("udp:{}", "9".repeat(500));
    let errs = errors(&sip(&format!("{long:?}"), "example.test"));
    assert!(errs[0].1.len() < 300, "{}", errs[0].1);
}

#[test]
fn default_config_text_round_trips() {
    let listen: Vec<Listen> = ["udp:0.0.0.0:5060", "tcp:[::]:5060"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let exts = [
        ("1000", MD5.to_ascii_lowercase(), SHA.to_owned()),
        ("1001", "0".repeat(32), "f".repeat(64)),
    ];
    // A path with characters that need TOML escaping.
    let text = default_config_text("pbx.example.test", &listen, "data \"main\"\\hl.db", &exts);
    let c = ok(&text);
    assert_eq!(c.sip.domain, "pbx.example.test");
    assert_eq!(c.sip.listen, listen);
    assert_eq!(c.storage.path, Path::new(BASE).join("data \"main\"\\hl.db"));
    assert_eq!(c.extensions.len(), 2);
    assert_eq!(c.extensions[1].user, "1001");
    assert_eq!(
        c.extensions[1].credential,
        Credential::Ha1 {
            md5: Some("0".repeat(32)),
            sha256: Some("f".repeat(64))
        }
    );
    assert!(text.lines().any(|l| l.starts_with('#')), "commented");

    // No extensions is valid too.
    let text = default_config_text::<&str, &str, &str>("example.test", &listen, "hl.db", &[]);
    assert!(ok(&text).extensions.is_empty());
}

#[test]
fn listen_parse_errors_are_typed() {
    assert_eq!(
        "foo".parse::<Listen>(),
        Err(ListenParseError::Format("foo".into()))
    );
    assert_eq!(
        "ws:127.0.0.1:80".parse::<Listen>(),
        Err(ListenParseError::UnsupportedTransport("ws".into()))
    );
    assert!(matches!(
        "tcp:host:1".parse::<Listen>(),
        Err(ListenParseError::Address {
            transport: Transport::Tcp,
            ..
        })
    ));
}

#[test]
fn suggestion_distance() {
    assert_eq!(edit_distance("path", "pathh"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(suggest("zzz", &["path", "listen"]), None);
    assert_eq!(suggest("PATH", &["path"]), Some("path"));
}

#[test]
fn shield_section_is_read_and_checked() {
    let c = ok(&with(
        r#"[shield]
trusted = ["192.0.2.0/24", "2001:db8::1", "sip.Provider.example"]
blocklist = ["198.51.100.0/24"]
blocked_countries = ["CN", "ru", "cn"]
zone_dir = "/var/lib/zones"
bantime_secs = 600
[shield.flood]
packet_rate = 50
register_per_min = 500
[shield.auth]
maxretry = 3
[shield.scan]
extra_signatures = ["EvilTool"]
"#,
    ));
    let s = &c.shield;
    assert_eq!(s.config.trusted.len(), 2);
    assert_eq!(s.trusted_hosts, vec!["sip.provider.example".to_string()]);
    assert_eq!(
        s.blocked_countries,
        vec!["cn".to_string(), "ru".to_string()]
    );
    assert_eq!(
        s.zone_files(),
        vec![
            PathBuf::from("/var/lib/zones/cn.zone"),
            PathBuf::from("/var/lib/zones/ru.zone")
        ]
    );
    assert_eq!(s.config.bantime_secs, 600);
    assert_eq!(s.config.flood.packet_rate, 50);
    assert_eq!(s.config.flood.register_per_min, Some(500));
    assert_eq!(s.config.flood.invite_per_min, None);
    assert_eq!(s.config.auth.maxretry, 3);
    assert_eq!(s.config.scan.extra_signatures, vec!["EvilTool".to_string()]);

    one_error(
        &with("[shield]\ntrusted = [\"192.0.2.1/24\"]\n"),
        "shield.trusted[0]",
        "did you mean 192.0.2.0/24?",
    );
    one_error(
        &with("[shield]\nblocked_countries = [\"china\"]\n"),
        "shield.blocked_countries[0]",
        "two-letter",
    );
    one_error(
        &with("[shield.flood]\npacket_rat = 5\n"),
        "shield.flood.packet_rat",
        "did you mean \"packet_rate\"",
    );
    one_error(
        &with("[shield.auth]\nmaxretry = 30\n"),
        "shield.auth.nat_maxretry",
        "must not be below shield.auth.maxretry (30)",
    );
    one_error(
        &with("[shield]\nenabled = \"yes\"\n"),
        "shield.enabled",
        "expected a boolean",
    );
    one_error(
        &with("[shield.scan]\ndistinct_users = 100\n"),
        "shield.scan.distinct_users",
        "between 2 and 64",
    );
}
