//! Test harness for real-network tests: a `Lab` guard that builds a topology
//! file under a unique name prefix, runs the real `xbridge` binary on it, and
//! removes everything when dropped, also when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use xbridge::stats::BridgeStats;
use xbridge::sys::netns;

use xbridge::sys::packet::{Captured, PacketSocket};
use xbridge::wire::{MacAddr, Tci};

pub const XBRIDGE: &str = env!("CARGO_BIN_EXE_xbridge");

pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Runs the xbridge binary and returns its output.
pub fn xbridge(args: &[&str]) -> Output {
    Command::new(XBRIDGE)
        .args(args)
        .output()
        .expect("running xbridge")
}

/// Whether this test can touch the kernel (root, AF_XDP, the tools). When it
/// cannot, says why and returns false, unless XBRIDGE_REQUIRE_PRIV=1 makes
/// that a failure.
pub fn privileged(test: &str) -> bool {
    let reason = missing_privilege();
    match reason {
        None => true,
        Some(reason) => {
            if std::env::var("XBRIDGE_REQUIRE_PRIV").as_deref() == Ok("1") {
                panic!("{test}: cannot run ({reason}) and XBRIDGE_REQUIRE_PRIV=1");
            }
            eprintln!("SKIP {test}: {reason} (set XBRIDGE_REQUIRE_PRIV=1 to make this a failure)");
            false
        }
    }
}

fn missing_privilege() -> Option<String> {
    if !xbridge::runtime::is_root() {
        return Some("not running as root".into());
    }
    if let Err(err) = xbridge::sys::af_xdp_available() {
        return Some(format!("no AF_XDP sockets: {err}"));
    }
    for tool in ["ip", "ethtool", "ping"] {
        if xbridge::topo::find_on_path(tool).is_none() {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// A topology brought up under a unique prefix, with an optional running
/// xbridge. Everything goes when it is dropped.
pub struct Lab {
    pub prefix: String,
    file: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Lab {
    /// `topo up FILE` (a repo-relative path) with `backend`.
    pub fn up(file: &str, backend: &str) -> Lab {
        let serial = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("x{:x}{serial}-", std::process::id() & 0xfff);
        let file = repo_file(file);
        let log = std::env::temp_dir().join(format!("xbridge-test-{prefix}log"));
        let lab = Lab {
            prefix,
            file,
            child: None,
            log,
        };
        let out = lab.xbridge(&["topo", "up", "--backend", backend]);
        assert!(
            out.status.success(),
            "topo up {} failed: {}",
            lab.file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    fn xbridge(&self, args: &[&str]) -> Output {
        let file = self.file.to_str().expect("utf-8 path");
        let (command, rest) = args.split_at(if args[0] == "topo" { 2 } else { 1 });
        Command::new(XBRIDGE)
            .args(command)
            .arg(file)
            .args(rest)
            .args(["--prefix", &self.prefix])
            .output()
            .expect("running xbridge")
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    pub fn bridge(&self, bridge: &str) -> String {
        format!("{}{bridge}", self.prefix)
    }

    /// `xbridge ARGS --bridge BRIDGE` (prefixed) against the running bridge.
    pub fn control(&self, bridge: &str, args: &[&str]) -> Output {
        Command::new(XBRIDGE)
            .args(args)
            .args(["--bridge", &self.bridge(bridge)])
            .output()
            .expect("running xbridge")
    }

    /// `control` that must succeed; its stdout parsed as JSON (`null` when empty).
    pub fn control_json(&self, bridge: &str, args: &[&str]) -> serde_json::Value {
        let out = self.control(bridge, args);
        assert!(
            out.status.success(),
            "xbridge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `control` that must fail with a message containing `says`.
    pub fn control_fails(&self, bridge: &str, args: &[&str], says: &str) {
        let out = self.control(bridge, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "xbridge {args:?} should fail");
        assert!(
            stderr.contains(says) && stderr.lines().count() == 1,
            "xbridge {args:?}: expected one line saying `{says}`, got: {stderr}"
        );
    }

    /// For `test`: `file` up on xbridge with `xbridge run FILE EXTRA` running
    /// until `bridges` are up; `None` (after saying why) without privileges.
    pub fn running(test: &str, file: &str, bridges: &[&str], extra: &[&str]) -> Option<Lab> {
        if !privileged(test) {
            return None;
        }
        let mut lab = Lab::up(file, "xbridge");
        lab.run(bridges, extra);
        Some(lab)
    }

    /// Starts `xbridge run FILE` and waits until each of `bridges` is up.
    pub fn run(&mut self, bridges: &[&str], extra: &[&str]) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = Command::new(XBRIDGE)
            .arg("run")
            .arg(&self.file)
            .args(extra)
            .args(["--prefix", &self.prefix])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning xbridge run");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for bridge in bridges {
            let pid_file = xbridge::runtime::pid_path(&self.bridge(bridge));
            let stats_file = xbridge::runtime::stats_path(&self.bridge(bridge));
            loop {
                let ready = std::fs::read_to_string(&pid_file)
                    .map(|text| text.trim() == pid.to_string())
                    .unwrap_or(false)
                    && stats_file.exists();
                if ready {
                    break;
                }
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("xbridge run exited with {status}: {}", self.log_text());
                }
                assert!(
                    Instant::now() < deadline,
                    "bridge {bridge} not up in time: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to `xbridge run`; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        terminate(&mut child)
    }

    /// The bridge's published counters, read when `ready` accepts them or
    /// after a timeout (the last ones read).
    pub fn stats_when(&self, bridge: &str, ready: impl Fn(&BridgeStats) -> bool) -> BridgeStats {
        let path = xbridge::runtime::stats_path(&self.bridge(bridge));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats: Option<BridgeStats> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
            if let Some(stats) = stats {
                if ready(&stats) || Instant::now() >= deadline {
                    return stats;
                }
            }
            assert!(Instant::now() < deadline, "no stats at {}", path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pings `address` from `host` until one reply or `timeout`.
    pub fn ping_until(&self, host: &str, address: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ping(host, address, 1) {
                return true;
            }
        }
        false
    }

    /// Fails unless `host` gets a ping reply from `address` within 5 s,
    /// showing xbridge's log.
    pub fn assert_reaches(&self, host: &str, address: &str) {
        assert!(
            self.ping_until(host, address, Duration::from_secs(5)),
            "{host} cannot reach {address}; xbridge said: {}",
            self.log_text()
        );
    }

    /// `count` pings, one second deadline each; true if all got replies.
    pub fn ping(&self, host: &str, address: &str, count: u32) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "ping", "-n", "-q", "-c"])
            .arg(count.to_string())
            .args(["-i", "0.2", "-W", "1", address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// A raw socket on `interface` of `host`.
    pub fn socket(&self, host: &str, interface: &str) -> PacketSocket {
        let namespace = self.ns(host);
        let interface = interface.to_string();
        std::thread::spawn(move || {
            netns::enter(&namespace).and_then(|()| PacketSocket::open(&interface))
        })
        .join()
        .expect("socket thread")
        .expect("opening a packet socket")
    }

    /// Interfaces of `namespace` with an XDP program attached.
    pub fn xdp_attached(&self, namespace: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", namespace, "-d", "-o", "link", "show"])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("xdp"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            .collect()
    }
}

fn terminate(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
        let _ = self.xbridge(&["topo", "down"]);
        // Whatever a failed `up` or `down` left with our prefix goes too.
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if name.starts_with(&self.prefix) {
                    let _ = Command::new("ip").args(["netns", "del", name]).status();
                }
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Frames on `socket` whose bytes contain `marker`, until `count` arrived or
/// `timeout` passed.
pub fn capture(
    socket: &PacketSocket,
    marker: &[u8],
    count: usize,
    timeout: Duration,
) -> Vec<Captured> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match socket.receive(left) {
            Ok(Some(frame)) if frame.bytes.windows(marker.len()).any(|w| w == marker) => {
                got.push(frame)
            }
            Ok(_) => {}
            Err(err) => panic!("capture: {err}"),
        }
    }
    got
}

/// Fails if any network namespace whose name starts with `prefix` exists.
pub fn assert_no_namespaces_with(prefix: &str, what: &str) {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(String::from)
        .collect();
    assert!(left.is_empty(), "{what}: namespaces left behind: {left:?}");
}

pub const BCAST: MacAddr = MacAddr::BROADCAST;
/// How long a frame that should arrive may take.
pub const ARRIVE: Duration = Duration::from_secs(3);
/// How long we watch for a frame that must not arrive.
pub const ABSENT: Duration = Duration::from_millis(400);

pub fn tag(vid: u16) -> Tci {
    Tci::new(0, false, vid)
}

pub fn marker(test: &str, row: usize) -> Vec<u8> {
    format!("xbridge-test {test} row {row} pid {}", std::process::id()).into_bytes()
}

/// Sends `frame` from `from` and checks that exactly the hosts in
/// `expected` get it, each with exactly the expected bytes.
pub fn expect_delivery(
    sockets: &BTreeMap<&str, PacketSocket>,
    from: &str,
    frame: &[u8],
    mark: &[u8],
    expected: &[(&str, Vec<u8>)],
    what: &str,
) {
    for socket in sockets.values() {
        socket.drain();
    }
    sockets[from].send(frame).expect("send");
    for (host, bytes) in expected {
        let got = capture(&sockets[host], mark, 1, ARRIVE);
        assert_eq!(got.len(), 1, "{what}: {host} should receive the frame");
        assert_eq!(
            &got[0].bytes, bytes,
            "{what}: {host} got the wrong bytes/tags"
        );
    }
    for (host, socket) in sockets {
        if *host == from || expected.iter().any(|(h, _)| h == host) {
            continue;
        }
        let got = capture(socket, mark, 1, ABSENT);
        assert!(
            got.is_empty(),
            "{what}: {host} must not receive the frame, got {:02x?}",
            got[0].bytes
        );
    }
}

pub fn host_mac(host: &str) -> MacAddr {
    let last = match host {
        "a" => 0x0a,
        "b" => 0x0b,
        "c" => 0x0c,
        "d" => 0x0d,
        "e" => 0x0e,
        other => panic!("no host {other}"),
    };
    MacAddr([2, 0, 0, 0, 0, last])
}

/// A row of the spec's reference scenario A-E: the sending host, the tags
/// of its broadcast frame, and each receiving host with the tags it gets.
pub type Row = (&'static str, Vec<Tci>, Vec<(&'static str, Vec<Tci>)>);

/// The rows of shared/spec/vlan-semantics.md's "Expected" list, in order,
/// for topologies/vlan-rules.toml (host X on port X).
pub fn reference_rows() -> Vec<Row> {
    let prio3 = Tci::new(3, false, 0);
    vec![
        (
            "a",
            vec![],
            vec![("b", vec![]), ("d", vec![]), ("e", vec![tag(10)])],
        ),
        ("c", vec![], vec![("e", vec![tag(20)])]),
        ("d", vec![], vec![("b", vec![]), ("e", vec![tag(30)])]),
        ("e", vec![tag(30)], vec![("b", vec![])]),
        ("e", vec![tag(20)], vec![("c", vec![])]),
        (
            "e",
            vec![tag(10)],
            vec![("a", vec![]), ("b", vec![]), ("d", vec![])],
        ),
        ("a", vec![tag(20)], vec![]),
        ("e", vec![], vec![]),
        (
            "a",
            vec![prio3],
            vec![
                ("b", vec![]),
                ("d", vec![]),
                ("e", vec![Tci::new(3, false, 10)]),
            ],
        ),
        (
            "b",
            vec![Tci::new(5, false, 10)],
            vec![
                ("a", vec![]),
                ("d", vec![]),
                ("e", vec![Tci::new(5, false, 10)]),
            ],
        ),
        (
            "a",
            vec![tag(10), tag(20)],
            vec![
                ("b", vec![tag(20)]),
                ("d", vec![tag(20)]),
                ("e", vec![tag(10), tag(20)]),
            ],
        ),
    ]
}

/// In topologies/vlan-rules.toml: a unicast frame from host a to `dst`,
/// which the bridge must flood in VLAN 10 (spec F2): b and d get it
/// untagged, e tagged 10 (E2, E3).
pub fn expect_vlan10_flood_from_a(
    sockets: &BTreeMap<&str, PacketSocket>,
    dst: MacAddr,
    mark: &[u8],
    what: &str,
) {
    let frame = |tags: &[Tci]| {
        tags.iter()
            .fold(
                xbridge::wire::FrameBuilder::new(dst, host_mac("a")),
                |b, t| b.tag(*t),
            )
            .payload(mark)
            .build()
    };
    let untagged = frame(&[]);
    expect_delivery(
        sockets,
        "a",
        &untagged,
        mark,
        &[
            ("b", untagged.clone()),
            ("d", untagged.clone()),
            ("e", frame(&[tag(10)])),
        ],
        what,
    );
}
