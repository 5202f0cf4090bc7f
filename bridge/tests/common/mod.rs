//! Test harness for real-network tests: a `Lab` guard that builds a topology
//! file under a unique name prefix, runs the real `xbridge` binary on it, and
//! removes everything when dropped, also when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xbridge::stats::BridgeStats;
use xbridge::sys::netns;
use xbridge::sys::packet::{Captured, PacketSocket};

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
