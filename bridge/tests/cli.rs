//! The command line as users meet it: help, dry runs, and bad input that
//! must give one clear line and a non-zero exit, with nothing applied.

mod common;

use common::{repo_file, xbridge};

fn write_topology(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("xbridge-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `xbridge ARGS`, expects failure, returns stderr (one line).
fn fails(args: &[&str]) -> String {
    let out = xbridge(args);
    assert!(!out.status.success(), "xbridge {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{stderr}"
    );
    stderr
}

const BASE: &str = r#"
[[hosts]]
name = "h1"
interfaces = [{ name = "eth0", addresses = ["192.168.50.1/24"] }]

[[bridges]]
name = "brx"
ports = [PORTS]

[[links]]
a = "h1:eth0"
b = "brx:p1"
"#;

fn with_ports(ports: &str) -> String {
    BASE.replace("PORTS", ports)
}

#[test]
fn a_vid_outside_1_to_4094_names_file_and_line() {
    let path = write_topology(
        "vid",
        &with_ports(r#"{ name = "p1", vlans = [{ vid = 4095 }] }"#),
    );
    let err = fails(&["topo", "check", path.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:8:", path.display())), "{err}");
    assert!(err.contains("VLAN ID 4095 is outside 1..=4094"), "{err}");
}

#[test]
fn two_pvids_are_refused() {
    let path = write_topology(
        "pvids",
        &with_ports(
            r#"{ name = "p1", vlans = [{ vid = 10, pvid = true }, { vid = 20, pvid = true }] }"#,
        ),
    );
    let err = fails(&["topo", "up", path.to_str().unwrap(), "--dry-run"]);
    assert!(err.contains("two PVIDs (10 and 20)"), "{err}");
}

#[test]
fn a_sub_interface_on_a_missing_trunk_is_refused() {
    let path = write_topology(
        "subif",
        &with_ports(r#"{ name = "p1" }, { name = "q.10" }"#),
    );
    let err = fails(&["run", path.to_str().unwrap()]);
    assert!(
        err.contains("port q.10: sub-interface on a missing trunk: interface q"),
        "{err}"
    );
}

#[test]
fn a_malformed_file_names_file_and_line() {
    let path = write_topology(
        "malformed",
        "[[hosts]]\nname = \"h1\"\ninterfaces = [{ name = eth0 }]\n",
    );
    let err = fails(&["topo", "check", path.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
    let path = write_topology(
        "unclosed",
        "[[hosts]]\nname = \"h1\"\ninterfaces = [{ name = \"eth0\" }\n",
    );
    fails(&["topo", "check", path.to_str().unwrap()]);
    let err = fails(&["topo", "check", "/nonexistent/topology.toml"]);
    assert!(
        err.contains("/nonexistent/topology.toml: No such file"),
        "{err}"
    );
}

#[test]
fn running_a_topology_that_is_not_up_says_what_to_do() {
    let file = repo_file("topologies/two-namespaces.toml");
    let err = fails(&["run", file.to_str().unwrap(), "--prefix", "xcli-notup-"]);
    assert!(
        err.contains("namespace xcli-notup-br0 of bridge xcli-notup-br0 does not exist"),
        "{err}"
    );
    assert!(err.contains("xbridge topo up"), "{err}");
}

#[test]
fn dry_run_prints_the_articles_commands() {
    let file = repo_file("topologies/vlan-rules.toml");
    let out = xbridge(&["topo", "up", file.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ip netns add a\n"), "{text}");
    assert!(
        text.contains("ip link add name eth0 netns a type veth peer name a netns brvlan\n"),
        "{text}"
    );
    assert!(
        !text.contains("type bridge"),
        "the xbridge backend builds no kernel bridge"
    );
    let down = xbridge(&["topo", "down", file.to_str().unwrap(), "--dry-run"]);
    assert!(String::from_utf8_lossy(&down.stdout).contains("ip netns del brvlan"));
}

#[test]
fn every_shipped_topology_is_valid() {
    for name in [
        "two-namespaces",
        "host-attached",
        "linked-bridges",
        "vlan-rules",
        "separated-vlans",
        "subinterfaces",
    ] {
        let file = repo_file(&format!("topologies/{name}.toml"));
        let out = xbridge(&["topo", "check", file.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!summary["bridges"].as_array().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn help_teaches_the_session() {
    let out = xbridge(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["topo up", "xbridge run", "xbridge stats", "demo"] {
        assert!(text.contains(needle), "--help lacks {needle}: {text}");
    }
}

#[test]
fn bench_with_pktgen_says_clearly_when_the_kernel_has_none() {
    if std::path::Path::new("/proc/net/pktgen").exists() {
        eprintln!(
            "SKIP bench_with_pktgen_says_clearly_when_the_kernel_has_none: this kernel has pktgen"
        );
        return;
    }
    let err = fails(&["bench", "--generator", "pktgen"]);
    assert!(err.contains("kernel pktgen is not available here"), "{err}");
    assert!(err.contains("--generator xdp"), "{err}");
}

#[test]
fn bench_rejects_impossible_frame_sizes() {
    let err = fails(&["bench", "--sizes", "63"]);
    assert!(err.contains("frame size 63 is outside 64..=1518"), "{err}");
}

// Runtime-control words are checked before any bridge is looked for, so a
// typo is reported as a typo (spec I2: VIDs 0 and 4095 never name a VLAN).
#[test]
fn runtime_commands_reject_bad_words_before_contacting_a_bridge() {
    let demo = repo_file("topologies/two-namespaces.toml");
    let demo = demo.to_str().unwrap();
    for (args, says) in [
        (
            &["vlan", "add", "dev", "p1", "vid", "0"][..],
            "outside 1..=4094",
        ),
        (
            &["vlan", "add", "dev", "p1", "vid", "4095"],
            "outside 1..=4094",
        ),
        (
            &["vlan", "add", "dev", "p1", "vid", "9-3"],
            "not a VLAN ID or range",
        ),
        (&["vlan", "add", "vid", "3"], "needs `dev PORT`"),
        (&["link", "set", "dev", "p1", "flood", "maybe"], "on or off"),
        (
            &["link", "set", "dev", "p1", "accept", "some"],
            "all, untagged or tagged",
        ),
        (&["fdb", "show", "vlan", "3-4"], "not allowed here"),
        (&["monitor", "routes"], "unknown monitor object"),
        (
            &["trace", "src", "02:00:00:00:00:01"],
            "needs `dev PORT` first",
        ),
        (
            &[
                "trace",
                "dev",
                "p1",
                "src",
                "zz",
                "dst",
                "ff:ff:ff:ff:ff:ff",
            ],
            "not a MAC",
        ),
        (
            &["trace", "dev", "p1", "src", "02:00:00:00:00:01"],
            "needs `src MAC` and `dst MAC`",
        ),
        (
            &["reload", "/nonexistent/file.toml"],
            "/nonexistent/file.toml",
        ),
        (
            &["run", demo, "--metrics", "0.0.0.0:9417"],
            "not a loopback address",
        ),
        (&["run", demo, "--metrics", "nine"], "is not an address"),
    ] {
        let stderr = fails(args);
        assert!(stderr.contains(says), "xbridge {args:?}: {stderr}");
    }
}
