//! The host firewall (`hardline firewall render`), checked by the real
//! nftables in a network namespace of the test's own: every ruleset the
//! configuration can give is accepted by `nft -c`, applies atomically (and
//! again, idempotently), keeps the shield's bans, and a configuration that
//! would lock everyone out is refused with the reason.

mod common;
use common::*;
use std::process::Command;

fn render(dir: &std::path::Path, firewall: &str) -> std::process::Output {
    let cfg = dir.join("hardline.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5061\"]\ndomain = \"{DOMAIN}\"\n\n[storage]\npath = \"hardline.db\"\n\n{firewall}"
        ),
    )
    .unwrap();
    Command::new(bin())
        .args(["firewall", "render", "--config"])
        .arg(&cfg)
        .output()
        .unwrap()
}

fn nft(args: &[&str], script: Option<&std::path::Path>) -> std::process::Output {
    let mut c = Command::new("nft");
    c.args(args);
    if let Some(f) = script {
        c.arg(f);
    }
    c.output().unwrap()
}

#[test]
fn every_rendered_ruleset_is_accepted_by_nft_and_applies_atomically() {
    let _ns = Netns::enter("fw-render");
    let dir = temp_dir("fw-render");
    let cases = [
        "[firewall]\nadmin = [\"198.51.100.7\", \"2001:db8::/64\"]\n",
        "[firewall]\nadmin = [\"198.51.100.7\"]\nipv6 = false\noutbound = \"restricted\"\n",
        "[firewall]\nssh_from = [\"192.0.2.0/24\"]\nweb_ports = [443, 8443]\nweb_from = [\"203.0.113.0/24\"]\nproviders = [\"192.0.2.10\"]\nantispoof = [\"10.0.0.0/8\", \"fc00::/7\"]\n",
        "[firewall]\nadmin = [\"198.51.100.7\"]\nssh_port = 2222\n[media]\nenabled = false\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let out = render(&dir, case);
        assert!(
            out.status.success(),
            "case {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = dir.join(format!("fw{i}.nft"));
        std::fs::write(&f, &out.stdout).unwrap();
        let chk = nft(&["-c", "-f"], Some(&f));
        assert!(
            chk.status.success(),
            "nft -c refused case {i}: {}\n{}",
            String::from_utf8_lossy(&chk.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Applied over a table that holds a ban: the ban stays, and applying
    // again changes nothing.
    let f0 = dir.join("fw0.nft");
    assert!(nft(&["-f"], Some(&f0)).status.success());
    assert!(nft(
        &[
            "add",
            "element",
            "inet",
            "hardline",
            "ban4",
            "{ 203.0.113.66 }"
        ],
        None
    )
    .status
    .success());
    assert!(nft(&["-f"], Some(&f0)).status.success());
    let f1 = dir.join("fw1.nft");
    assert!(nft(&["-f"], Some(&f1)).status.success());
    let list = String::from_utf8_lossy(&nft(&["list", "table", "inet", "hardline"], None).stdout)
        .into_owned();
    assert!(list.contains("203.0.113.66"), "the ban went:\n{list}");
    assert!(
        list.contains("meta nfproto ipv6"),
        "the second ruleset is not in force:\n{list}"
    );
    assert_eq!(list.matches("chain firewall_in").count(), 1, "{list}");
    assert_eq!(
        list.matches("comment \"SIP\"").count(),
        2,
        "rules doubled:\n{list}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_firewall_that_would_lock_everyone_out_is_refused() {
    let dir = temp_dir("fw-lockout");
    for case in ["", "[firewall]\nssh_port = 22\n"] {
        let out = render(&dir, case);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("locked out") && err.contains("firewall.admin"),
            "{err}"
        );
    }
    let out = render(
        &dir,
        "[firewall]\nadmin = [\"10.1.2.3\"]\nantispoof = [\"10.0.0.0/8\"]\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("firewall.antispoof"));
    let out = render(&dir, "[firewall]\nadmin = [\"not-an-address\"]\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("firewall.admin[0]"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
