//! Runtime control of a running xbridge (issue 5), through the real binary
//! and its control socket, on veths in test-made namespaces: every command,
//! that changes take effect on real frames at once, monitor, trace against
//! real frames, reload under traffic, and bad input that changes nothing.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{capture, expect_delivery, host_mac, marker, tag, Lab, ABSENT, ARRIVE, BCAST};
use xbridge::sys::packet::PacketSocket;
use xbridge::wire::{FrameBuilder, MacAddr, Tci};

fn reference_lab(test: &str) -> Option<(Lab, BTreeMap<&'static str, PacketSocket>)> {
    let lab = Lab::running(test, "topologies/vlan-rules.toml", &["brvlan"], &[])?;
    let sockets = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|h| (h, lab.socket(h, "eth0")))
        .collect();
    Some((lab, sockets))
}

fn broadcast(from: &str, tags: &[Tci], mark: &[u8]) -> Vec<u8> {
    tags.iter()
        .fold(FrameBuilder::new(BCAST, host_mac(from)), |b, t| b.tag(*t))
        .payload(mark)
        .build()
}

fn untagged(mark: &[u8]) -> Vec<u8> {
    broadcast("a", &[], mark)
}

// spec: I4, E1, E2, E3, F2 (VLAN membership and flood flags changed at
// runtime; `show -j` reports exactly what was set, and the very next frame
// follows it)
#[test]
fn vlan_and_link_changes_show_up_and_apply_to_the_next_frame() {
    let Some((lab, sockets)) =
        reference_lab("vlan_and_link_changes_show_up_and_apply_to_the_next_frame")
    else {
        return;
    };
    let vlans_of = |port: &str| lab.control_json("brvlan", &["vlan", "show", "dev", port, "-j"]);
    let before = vlans_of("b");
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}");
    let everyone = [("b", vec![]), ("d", vec![]), ("e", vec![tag(10)])];
    let expect = |row: usize, receivers: &[(&str, Vec<Tci>)], what: &str| {
        let mark = marker("runtime-vlan", row);
        let expected: Vec<(&str, Vec<u8>)> = receivers
            .iter()
            .map(|(h, tags)| (*h, broadcast("a", tags, &mark)))
            .collect();
        expect_delivery(&sockets, "a", &untagged(&mark), &mark, &expected, what);
    };
    expect(1, &everyone, "before any change");

    lab.control_json("brvlan", &["vlan", "del", "dev", "b", "vid", "10"]);
    let after = vlans_of("b");
    assert_eq!(
        after,
        serde_json::json!([{"port": "b", "vlan": 30, "pvid": false, "untagged": true}]),
        "VLAN 10 and with it b's PVID are gone"
    );
    expect(
        2,
        &everyone[1..],
        "VLAN 10 removed from b: the next frame skips b",
    );

    lab.control_json(
        "brvlan",
        &["vlan", "add", "dev", "b", "vid", "10", "pvid", "untagged"],
    );
    assert_eq!(vlans_of("b"), before, "add restores exactly what was there");
    expect(3, &everyone, "VLAN 10 back on b");

    lab.control_json("brvlan", &["vlan", "add", "dev", "c", "vid", "10-12"]);
    let c = vlans_of("c");
    let tagged: Vec<u64> = c
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["untagged"] == false)
        .map(|r| r["vlan"].as_u64().unwrap())
        .collect();
    assert_eq!(tagged, vec![10, 11, 12], "{c}");
    let mut with_c = everyone.to_vec();
    with_c.push(("c", vec![tag(10)]));
    expect(4, &with_c, "c now carries VLAN 10 tagged (E3)");
    lab.control_json("brvlan", &["vlan", "del", "dev", "c", "vid", "10-12"]);

    lab.control_json("brvlan", &["link", "set", "dev", "d", "bcast_flood", "off"]);
    let d = lab.control_json("brvlan", &["link", "show", "dev", "d", "-j"]);
    assert_eq!(d[0]["bcast_flood"], false, "{d}");
    assert_eq!(d[0]["flood"], true, "{d}");
    assert_eq!(d[0]["pvid"], 30, "{d}");
    expect(
        5,
        &[everyone[0].clone(), everyone[2].clone()],
        "d's bcast_flood off",
    );
    lab.control_json("brvlan", &["link", "set", "dev", "d", "bcast_flood", "on"]);
    expect(6, &everyone, "d's bcast_flood back on");
}

// spec: F1, F2 (a flushed destination is unknown again and floods)
#[test]
fn fdb_flush_makes_a_known_destination_flood_again() {
    let Some((lab, sockets)) = reference_lab("fdb_flush_makes_a_known_destination_flood_again")
    else {
        return;
    };
    // A MAC only this test uses, so no host's own traffic can teach it.
    let hidden = MacAddr([2, 0, 0, 0, 0xbb, 0x0b]);
    let teach = FrameBuilder::new(BCAST, hidden).payload(b"teach").build();
    sockets["b"].send(&teach).unwrap();
    let deadline = Instant::now() + ARRIVE;
    while !lab
        .control_json("brvlan", &["fdb", "show", "dev", "b", "-j"])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["mac"] == hidden.to_string())
    {
        assert!(Instant::now() < deadline, "b's source was never learned");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mark = marker("flush", 1);
    let unicast = FrameBuilder::new(hidden, host_mac("a"))
        .payload(&mark)
        .build();
    expect_delivery(
        &sockets,
        "a",
        &unicast,
        &mark,
        &[("b", unicast.clone())],
        "known unicast goes to b only (F1)",
    );
    let flushed = lab.control_json("brvlan", &["fdb", "flush", "-j"]);
    assert!(flushed["removed"].as_u64().unwrap() >= 1, "{flushed}");
    common::expect_vlan10_flood_from_a(
        &sockets,
        hidden,
        &marker("flush", 2),
        "after the flush the same frame floods (F2)",
    );
}

// spec: L1 (monitor reports the learn of a source the bridge has never seen)
#[test]
fn monitor_reports_a_learn_event_when_a_host_first_sends() {
    let Some((lab, sockets)) =
        reference_lab("monitor_reports_a_learn_event_when_a_host_first_sends")
    else {
        return;
    };
    let mut monitor = Command::new(common::XBRIDGE)
        .args(["monitor", "fdb", "-j", "--bridge", &lab.bridge("brvlan")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning xbridge monitor");
    let stdout = monitor.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, poke: &dyn Fn(), matches: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        poke();
        let mut last_poke = Instant::now();
        loop {
            if let Ok(event) = lines.recv_timeout(Duration::from_millis(100)) {
                if matches(&event) {
                    return event;
                }
            }
            assert!(Instant::now() < deadline, "monitor never showed {what}");
            if last_poke.elapsed() > Duration::from_millis(300) {
                poke();
                last_poke = Instant::now();
            }
        }
    };
    // The monitor is subscribed once it shows the events of a flush.
    wait_for(
        "a flush",
        &|| {
            lab.control_json("brvlan", &["fdb", "flush", "-j"]);
        },
        &|e| e["event"] == "fdb_change",
    );
    let newcomer = MacAddr([2, 0, 0, 0, 0xaa, 0x01]);
    let frame = FrameBuilder::new(BCAST, newcomer)
        .payload(b"hello from a newcomer")
        .build();
    let sent = std::cell::Cell::new(false);
    let event = wait_for(
        "the newcomer's learn event",
        &|| {
            if !sent.replace(true) {
                sockets["a"].send(&frame).unwrap();
            }
        },
        &|e| e["event"] == "learn" && e["mac"] == newcomer.to_string(),
    );
    assert_eq!(event["port"], "a", "{event}");
    assert_eq!(event["vlan"], 10, "{event}");
    let _ = monitor.kill();
    let _ = monitor.wait();
}

// spec: I2, I4, I5, F2, E1, E2, E3, X1 (trace's prediction equals what real
// frames do, for every row of the reference table)
#[test]
fn trace_agrees_with_real_frames_on_every_reference_row() {
    let Some((lab, sockets)) =
        reference_lab("trace_agrees_with_real_frames_on_every_reference_row")
    else {
        return;
    };
    for (number, (from, tags, expected)) in common::reference_rows().iter().enumerate() {
        let mark = marker("trace", number + 1);
        let frame = broadcast(from, tags, &mark);
        let trace = lab.control_json(
            "brvlan",
            &[
                "trace",
                "dev",
                from,
                "hex",
                &xbridge::wire::hex(&frame),
                "-j",
            ],
        );
        let predicted: BTreeMap<String, String> = trace["egress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["port"].as_str().unwrap().to_string(),
                    e["frame"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // The spec's own expectation first, so a wrong trace cannot agree
        // with a wrong bridge by accident.
        let spec: BTreeMap<String, String> = expected
            .iter()
            .map(|(h, t)| {
                (
                    h.to_string(),
                    xbridge::wire::hex(&broadcast(from, t, &mark)),
                )
            })
            .collect();
        assert_eq!(predicted, spec, "row {}: trace {trace}", number + 1);
        assert!(
            !trace["steps"].as_array().unwrap().is_empty(),
            "row {}: trace names the spec items",
            number + 1
        );

        for socket in sockets.values() {
            socket.drain();
        }
        sockets[from].send(&frame).unwrap();
        let mut real = BTreeMap::new();
        for (host, socket) in &sockets {
            if host == from {
                continue;
            }
            let wait = if predicted.contains_key(*host) {
                ARRIVE
            } else {
                ABSENT
            };
            if let Some(got) = capture(socket, &mark, 1, wait).first() {
                real.insert(host.to_string(), xbridge::wire::hex(&got.bytes));
            }
        }
        assert_eq!(real, predicted, "row {}: real frames vs trace", number + 1);
    }
    // Tracing learns nothing: the FDB holds only what real frames taught.
    let fdb = lab.control_json("brvlan", &["fdb", "show", "-j"]);
    assert!(
        fdb.as_array().unwrap().iter().all(|r| r["static"] == false),
        "{fdb}"
    );
}

/// Removes a file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// Bad input: each is one clear line, a non-zero exit, and the bridge's
// state is what it was.
#[test]
fn bad_control_input_is_refused_and_changes_nothing() {
    let Some((lab, _sockets)) = reference_lab("bad_control_input_is_refused_and_changes_nothing")
    else {
        return;
    };
    // Configuration only: `learned` follows the hosts' own chatter.
    let state = || {
        let mut links = lab.control_json("brvlan", &["link", "show", "-j"]);
        for link in links.as_array_mut().unwrap() {
            link.as_object_mut().unwrap().remove("learned");
        }
        (lab.control_json("brvlan", &["vlan", "show", "-j"]), links)
    };
    let before = state();
    let refused: [(&[&str], &str); 12] = [
        (&["vlan", "add", "dev", "nope", "vid", "10"], "no port nope"),
        (
            &["link", "set", "dev", "nope", "learning", "off"],
            "no port nope",
        ),
        (
            &[
                "trace",
                "dev",
                "nope",
                "src",
                "02:00:00:00:00:01",
                "dst",
                "ff:ff:ff:ff:ff:ff",
            ],
            "no port nope",
        ),
        (&["vlan", "add", "dev", "a", "vid", "0"], "outside 1..=4094"),
        (
            &["vlan", "add", "dev", "a", "vid", "4095"],
            "outside 1..=4094",
        ),
        (
            &["vlan", "add", "dev", "a", "vid", "20-22", "pvid"],
            "at most one",
        ),
        (
            &["vlan", "del", "dev", "a", "vid", "30"],
            "not a member of VLAN 30",
        ),
        (
            &["link", "set", "dev", "a", "learning", "maybe"],
            "on or off",
        ),
        (&["link", "set", "dev", "a"], "nothing to change"),
        (
            &["fdb", "add", "01:00:5e:00:00:01", "dev", "a", "vlan", "10"],
            "unicast",
        ),
        (&["vlan", "frobnicate"], "unknown vlan action"),
        (&["monitor", "everything"], "unknown monitor object"),
    ];
    for (args, says) in refused {
        lab.control_fails("brvlan", args, says);
    }

    let dir = std::env::temp_dir().join(format!("{}reload", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let original =
        std::fs::read_to_string(common::repo_file("topologies/vlan-rules.toml")).unwrap();
    let two_pvids = original.replace(
        "vlans = [{ vid = 20, pvid = true, untagged = true }]",
        "vlans = [{ vid = 20, pvid = true, untagged = true }, { vid = 30, pvid = true }]",
    );
    let more_ports = original.replace(
        "# tagged, no PVID\n",
        "# tagged, no PVID\n\n[[bridges.ports]]\nname = \"e.99\"\n",
    );
    assert_ne!(two_pvids, original);
    assert_ne!(more_ports, original);
    for (name, text, says) in [
        ("two-pvids.toml", two_pvids.as_str(), "two PVIDs"),
        (
            "more-ports.toml",
            more_ports.as_str(),
            "port e.99 would be added",
        ),
        ("broken.toml", "[[bridges]\nname = ", "broken.toml:"),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let out = Command::new(common::XBRIDGE)
            .args(["--prefix", &lab.prefix, "reload"])
            .arg(&file)
            .args(["--bridge", &lab.bridge("brvlan")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "reload {name} should fail");
        assert!(stderr.contains(says), "reload {name}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Only root (or the bridge's own user) may talk to the socket.
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(common::XBRIDGE)
        .args(["fdb", "show", "--bridge", &lab.bridge("brvlan")])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("root-only"), "as nobody: {stderr}");

    // A socket someone else owns is never talked to.
    let fake = format!("{}fake", lab.prefix);
    let path = xbridge::control::socket_path(&fake);
    std::fs::create_dir_all(xbridge::runtime::RUN_DIR).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _cleanup = RemoveOnDrop(path.clone());
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let out = common::xbridge(&["fdb", "show", "--bridge", &fake]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");

    assert_eq!(state(), before, "nothing changed");
}

// Reload under traffic: a sequence-checked flow on ports that the reload
// does not touch loses nothing while another port's VLANs change back and
// forth.
#[test]
fn reload_under_traffic_loses_nothing_on_untouched_ports() {
    let Some(lab) = Lab::running(
        "reload_under_traffic_loses_nothing_on_untouched_ports",
        "bridge/tests/topologies/reload.toml",
        &["brreload"],
        &[],
    ) else {
        return;
    };
    let original =
        std::fs::read_to_string(common::repo_file("bridge/tests/topologies/reload.toml")).unwrap();
    let changed = original.replace(
        "{ name = \"px\", vlans = [{ vid = 20, pvid = true, untagged = true }] }, # px",
        "{ name = \"px\", vlans = [{ vid = 20 }, { vid = 30, pvid = true, untagged = true }, { vid = 40 }], accept = \"untagged\" }, # px",
    );
    assert_ne!(changed, original);
    let dir = std::env::temp_dir().join(format!("{}reload", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [dir.join("changed.toml"), dir.join("original.toml")];
    std::fs::write(&files[0], &changed).unwrap();
    std::fs::write(&files[1], &original).unwrap();

    let sink = xbridge::sys::netns::within(&lab.ns("sink"), || {
        let ifindex = xbridge::sys::if_index("eth0")?;
        xbridge_ebpf::bench::Sink::attach("eth0", ifindex).map_err(std::io::Error::other)
    })
    .expect("sink attached");
    let generator = Command::new(common::XBRIDGE)
        .args(["pktgen", "--netns", &lab.ns("gen"), "--dev", "eth0"])
        .args(["--dst-mac", "02:00:00:00:be:02", "--rate", "20000"])
        .args(["--duration", "3", "-j"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning xbridge pktgen");
    let mut reloads = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let file = &files[reloads % 2];
        let out = Command::new(common::XBRIDGE)
            .args(["--prefix", &lab.prefix, "reload", "-j"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reload {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let changes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let changes = changes.as_array().unwrap();
        assert!(
            !changes.is_empty() && changes.iter().all(|c| c["port"] == "px"),
            "px and only px changes: {changes:?}"
        );
        reloads += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = generator.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pktgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 10_000, "the generator ran: {report}");
    let deadline = Instant::now() + ARRIVE;
    let counts = loop {
        let counts = sink.counts().unwrap();
        let received: u64 = counts.streams.iter().map(|s| s.received).sum();
        if received >= sent || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let received: u64 = counts.streams.iter().map(|s| s.received).sum();
    let duplicates: u64 = counts.streams.iter().map(|s| s.duplicates).sum();
    eprintln!("reload under traffic: {sent} frames sent, {received} received, {duplicates} duplicates, {reloads} reloads");
    assert!(reloads >= 10, "{reloads} reloads");
    assert_eq!(
        (received, duplicates),
        (sent, 0),
        "{sent} sent during {reloads} reloads; sink: {counts:?}"
    );

    // The file is the truth: a static entry deleted at runtime comes back.
    lab.control_json(
        "brreload",
        &["fdb", "del", "02:00:00:00:be:02", "vlan", "10"],
    );
    let sink_entry = || {
        lab.control_json("brreload", &["fdb", "show", "static", "-j"])
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["mac"] == "02:00:00:00:be:02" && r["port"] == "p2")
    };
    assert!(!sink_entry());
    let out = Command::new(common::XBRIDGE)
        .args(["--prefix", &lab.prefix, "reload"])
        .arg(&files[1])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sink_entry(), "reload restored the static entry");
    let _ = std::fs::remove_dir_all(&dir);
}

// `stats -s dev PORT` and the Prometheus endpoint report per-port and
// per-VLAN counters of real traffic.
#[test]
fn stats_and_metrics_count_per_port_and_per_vlan() {
    let Some(lab) = Lab::running(
        "stats_and_metrics_count_per_port_and_per_vlan",
        "topologies/vlan-rules.toml",
        &["brvlan"],
        &["--metrics", "127.0.0.1:0"],
    ) else {
        return;
    };
    let socket = lab.socket("a", "eth0");
    for row in 0..5 {
        socket.send(&untagged(&marker("stats", row))).unwrap();
    }
    let deadline = Instant::now() + ARRIVE;
    let stats = loop {
        let stats = lab.control_json("brvlan", &["stats", "-s", "dev", "a", "-j"]);
        let vlan10 = stats["vlans"]["10"]["rx_frames"].as_u64().unwrap_or(0);
        if (stats["ports"]["a"]["rx_frames"].as_u64().unwrap() >= 5 && vlan10 >= 5)
            || Instant::now() > deadline
        {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        stats["ports"].as_object().unwrap().len(),
        1,
        "dev a only: {stats}"
    );
    assert!(
        stats["ports"]["a"]["rx_frames"].as_u64().unwrap() >= 5,
        "{stats}"
    );
    assert!(
        stats["vlans"]["10"]["tx_frames"].as_u64().unwrap() >= 15,
        "{stats}"
    );
    lab.control_fails("brvlan", &["stats", "dev", "nope"], "no port nope");
    let text = lab.control("brvlan", &["stats", "-s"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("xdp_redirected="),
        "-s shows XDP counters: {text}"
    );
    assert!(
        text.contains("a drops (spec X2): malformed=0 no_port=0"),
        "-s lists every drop reason: {text}"
    );

    let log = lab.log_text();
    let address = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address in the log: {log}"));
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    use std::io::{Read, Write};
    write!(stream, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let bridge = lab.bridge("brvlan");
    let value = |name: &str, labels: &str| -> u64 {
        let wanted = format!("xbridge_{name}{{bridge=\"{bridge}\",{labels}}} ");
        response
            .lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .unwrap_or_else(|| panic!("no {wanted} in {response}"))
            .parse()
            .unwrap()
    };
    assert!(value("port_rx_frames_total", "port=\"a\"") >= 5);
    assert!(value("vlan_rx_frames_total", "vlan=\"10\"") >= 5);
    assert_eq!(
        value("port_drops_total", "port=\"a\",reason=\"bad_vid\""),
        0
    );
}

// Runtime control: `fdb` and `vlan show` against a running bridge through
// its control socket.
#[test]
fn fdb_and_vlan_commands_work_against_a_running_bridge() {
    let Some(lab) = Lab::running(
        "fdb_and_vlan_commands_work_against_a_running_bridge",
        "topologies/two-namespaces.toml",
        &["br0"],
        &[],
    ) else {
        return;
    };
    let bridge = lab.bridge("br0");
    lab.assert_reaches("ns1", "192.168.50.2");
    let socket = xbridge::control::socket_path(&bridge);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let show = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["fdb", "show", "-j", "--bridge", &bridge];
        args.extend_from_slice(extra);
        let out = common::xbridge(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let learned = show(&[]);
    let ports: Vec<&str> = learned
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["port"].as_str().unwrap())
        .collect();
    assert!(ports.contains(&"p1") && ports.contains(&"p2"), "{learned}");
    assert!(show(&["dev", "p1"])
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["port"] == "p1"));

    let run = |args: &[&str]| common::xbridge(&[args, &["--bridge", &bridge]].concat());
    let out = run(&["fdb", "add", "02:00:00:00:00:99", "dev", "p2", "vlan", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["fdb", "flush"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.starts_with("0 "), "the learned entries went: {text}");
    let after = show(&[]);
    let rows = after.as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["mac"] == "02:00:00:00:00:99" && r["static"] == true && r["port"] == "p2"),
        "static entries survive a flush: {after}"
    );
    assert!(run(&["fdb", "del", "02:00:00:00:00:99", "vlan", "1"])
        .status
        .success());
    assert!(!show(&[])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["mac"] == "02:00:00:00:00:99"));
    // `flush static` takes static entries too, and only in the given VLAN.
    assert!(
        run(&["fdb", "add", "02:00:00:00:00:97", "dev", "p1", "vlan", "1"])
            .status
            .success()
    );
    let out = run(&["fdb", "flush", "dev", "p1", "vlan", "1", "static", "-j"]);
    let flushed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(flushed["removed"], 1, "{flushed}");
    assert!(!show(&["static"])
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["mac"] == "02:00:00:00:00:97"));

    // Bad input: a clear line and a non-zero exit.
    let out = run(&[
        "fdb",
        "add",
        "02:00:00:00:00:98",
        "dev",
        "nope",
        "vlan",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(": no port nope"));
    let out = run(&[
        "fdb",
        "add",
        "02:00:00:00:00:98",
        "dev",
        "p1",
        "vlan",
        "4095",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside 1..=4094"));

    let out = run(&["vlan", "show", "-j"]);
    assert!(out.status.success());
    let vlans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vlans.as_array().unwrap().len(), 2, "{vlans}");
    assert!(vlans
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["vlan"] == 1 && v["pvid"] == true && v["untagged"] == true));
}
