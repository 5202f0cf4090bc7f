//! The real binary on real veths in test-made namespaces, through AF_XDP.
//! Each test skips (or fails under XBRIDGE_REQUIRE_PRIV=1) without root.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{capture, expect_delivery, host_mac, marker, privileged, tag, Lab, ARRIVE, BCAST};
use xbridge::sys::packet::PacketSocket;
use xbridge::wire::{FrameBuilder, MacAddr, Tci};

// spec: F1, F2 (the seed's part I experiment through xbridge)
#[test]
fn two_namespaces_ping_through_xbridge() {
    let Some(lab) = Lab::running(
        "two_namespaces_ping_through_xbridge",
        "topologies/two-namespaces.toml",
        &["br0"],
        &[],
    ) else {
        return;
    };
    lab.assert_reaches("ns1", "192.168.50.2");
    assert!(lab.ping("ns1", "192.168.50.2", 5), "5 pings in a row");
    let stats = lab.stats_when("br0", |s| s.ports["p2"].tx_frames >= 5);
    assert!(
        stats.ports["p1"].rx_frames >= 5 && stats.ports["p2"].tx_frames >= 5,
        "{stats:?}"
    );
    assert_eq!(stats.fdb_entries, 2);
    // `xbridge stats` finds the one running bridge by itself only when it
    // is alone; name it, as tests run side by side.
    let out = common::xbridge(&["stats", "--bridge", &lab.bridge("br0"), "-j"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], 2);
    assert!(json["ports"]["p1"]["rx_frames"].as_u64().unwrap() >= 5);
}

// The kernel backend refuses VLAN topologies where the kernel bridge has no
// vlan_filtering, and builds them where it has.
#[test]
fn kernel_backend_says_when_it_cannot_build_vlans() {
    if !privileged("kernel_backend_says_when_it_cannot_build_vlans") {
        return;
    }
    let caps = xbridge::topo::kernel_caps();
    let file = common::repo_file("topologies/separated-vlans.toml");
    let prefix = format!("xk{:x}-", std::process::id() & 0xfff);
    let out = common::xbridge(&[
        "topo",
        "up",
        file.to_str().unwrap(),
        "--backend",
        "kernel",
        "--prefix",
        &prefix,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if caps.vlan_filtering {
        assert!(out.status.success(), "{stderr}");
        let down = common::xbridge(&["topo", "down", file.to_str().unwrap(), "--prefix", &prefix]);
        assert!(down.status.success());
    } else {
        assert!(!out.status.success());
        assert!(stderr.contains("no vlan_filtering"), "{stderr}");
        common::assert_no_namespaces_with(&prefix, "nothing half-applied");
    }
}

// spec: F1, F2 (the same file on the Linux bridge: the kernel backend)
#[test]
fn two_namespaces_ping_through_the_kernel_bridge() {
    if !privileged("two_namespaces_ping_through_the_kernel_bridge") {
        return;
    }
    let lab = Lab::up("topologies/two-namespaces.toml", "kernel");
    lab.assert_reaches("ns1", "192.168.50.2");
    assert!(lab.xdp_attached(&lab.ns("br0")).is_empty());
}

// spec: F1, F2 (the host reaches an IP-less bridge through a veth pair)
#[test]
fn host_attached_reaches_both_guests() {
    let Some(lab) = Lab::running(
        "host_attached_reaches_both_guests",
        "topologies/host-attached.toml",
        &["brhost"],
        &[],
    ) else {
        return;
    };
    lab.assert_reaches("host", "192.168.50.11");
    lab.assert_reaches("host", "192.168.50.12");
    lab.assert_reaches("guest1", "192.168.50.12");
}

// spec: F2 (two xbridge bridges joined by a veth pair)
#[test]
fn linked_bridges_forward_across_the_veth_between_them() {
    let Some(lab) = Lab::running(
        "linked_bridges_forward_across_the_veth_between_them",
        "topologies/linked-bridges.toml",
        &["br1", "br2"],
        &[],
    ) else {
        return;
    };
    lab.assert_reaches("left", "192.168.50.2");
    let br1 = lab.stats_when("br1", |s| s.ports["link"].tx_frames > 0);
    let br2 = lab.stats_when("br2", |s| s.ports["link"].rx_frames > 0);
    assert!(br1.ports["link"].tx_frames > 0 && br2.ports["link"].rx_frames > 0);
}

// spec: E1 (broadcasts and ARP never cross a VLAN border)
#[test]
fn separated_vlans_ping_inside_and_never_across() {
    let Some(lab) = Lab::running(
        "separated_vlans_ping_inside_and_never_across",
        "topologies/separated-vlans.toml",
        &["brsep"],
        &[],
    ) else {
        return;
    };
    lab.assert_reaches("red1", "192.168.50.2");
    lab.assert_reaches("blue1", "192.168.50.4");

    let blue2 = lab.socket("blue2", "eth0");
    blue2.drain();
    assert!(
        !lab.ping("red1", "192.168.50.3", 2),
        "VLAN 10 reached VLAN 20"
    );
    // Not one ARP request from red1 made it to VLAN 20.
    let red1_mac = std::process::Command::new("ip")
        .args(["-n", &lab.ns("red1"), "-br", "link", "show", "dev", "eth0"])
        .output()
        .unwrap();
    let red1_mac: MacAddr = String::from_utf8_lossy(&red1_mac.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    while let Some(frame) = blue2.receive(Duration::ZERO).unwrap() {
        assert_ne!(
            frame.bytes[6..12],
            red1_mac.0,
            "a frame from red1 reached blue2"
        );
    }
    let stats = lab.stats_when("brsep", |s| s.ports["p3"].egress_filter >= 2);
    assert!(stats.ports["p3"].egress_filter >= 2, "{stats:?}");
    assert!(stats.ports["p4"].egress_filter >= 2, "{stats:?}");
}

// spec: I2, I4, E1, E2, E3, X1 (the reference scenario, row by row, on the wire)
#[test]
fn vlan_rules_reference_scenario_on_real_frames() {
    let Some(lab) = Lab::running(
        "vlan_rules_reference_scenario_on_real_frames",
        "topologies/vlan-rules.toml",
        &["brvlan"],
        &[],
    ) else {
        return;
    };
    let hosts = ["a", "b", "c", "d", "e"];
    let sockets: BTreeMap<&str, PacketSocket> =
        hosts.iter().map(|h| (*h, lab.socket(h, "eth0"))).collect();

    let rows = common::reference_rows();
    for (number, (from, tags, expected)) in rows.iter().enumerate() {
        let mark = marker("ae", number + 1);
        let build = |tags: &[Tci]| {
            tags.iter()
                .fold(FrameBuilder::new(BCAST, host_mac(from)), |b, t| b.tag(*t))
                .payload(&mark)
                .build()
        };
        let expected: Vec<(&str, Vec<u8>)> = expected.iter().map(|(h, t)| (*h, build(t))).collect();
        expect_delivery(
            &sockets,
            from,
            &build(tags),
            &mark,
            &expected,
            &format!("row {}", number + 1),
        );
    }
    let stats = lab.stats_when("brvlan", |s| s.ports["e"].drops.contains_key("no_pvid"));
    // Row 7 is the only tagged frame a sends; e's own untagged chatter
    // (IPv6 neighbour discovery) adds to row 8's no_pvid.
    assert_eq!(
        stats.ports["a"].drops.get("ingress_filter"),
        Some(&1),
        "{stats:?}"
    );
    assert!(
        stats.ports["e"]
            .drops
            .get("no_pvid")
            .is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
    assert!(
        stats.ports["d"].egress_filter >= 1,
        "row 4: blue is withheld from d"
    );
}

// spec: L1, F1 (a learned unicast reaches exactly one host)
#[test]
fn learning_sends_known_unicast_to_one_port_only() {
    let Some(lab) = Lab::running(
        "learning_sends_known_unicast_to_one_port_only",
        "topologies/vlan-rules.toml",
        &["brvlan"],
        &[],
    ) else {
        return;
    };
    let sockets: BTreeMap<&str, PacketSocket> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|h| (*h, lab.socket(h, "eth0")))
        .collect();
    // Unknown: flooded in VLAN 10. (Not b's MAC: b's own IPv6 traffic may
    // already have taught the bridge that one.)
    let nobody = MacAddr([2, 0, 0, 0, 0, 0x77]);
    common::expect_vlan10_flood_from_a(&sockets, nobody, &marker("learn", 1), "unknown unicast");
    // b speaks once: its MAC is learned on port b in VLAN 10.
    let hello = marker("learn", 2);
    sockets["b"]
        .send(
            &FrameBuilder::new(BCAST, host_mac("b"))
                .payload(&hello)
                .build(),
        )
        .unwrap();
    assert_eq!(capture(&sockets["a"], &hello, 1, ARRIVE).len(), 1);
    let mark = marker("learn", 3);
    let known = FrameBuilder::new(host_mac("b"), host_mac("a"))
        .payload(&mark)
        .build();
    expect_delivery(
        &sockets,
        "a",
        &known,
        &mark,
        &[("b", known.clone())],
        "known unicast",
    );
}

// spec: I3, E4 (sub-interface ports on a trunk veth, no 8021q needed)
#[test]
fn sub_interfaces_rewrite_tags() {
    let Some(lab) = Lab::running(
        "sub_interfaces_rewrite_tags",
        "topologies/subinterfaces.toml",
        &["brsub"],
        &[],
    ) else {
        return;
    };
    let sockets: BTreeMap<&str, PacketSocket> = ["trunk", "v10", "v20"]
        .iter()
        .map(|h| (*h, lab.socket(h, "eth0")))
        .collect();
    let mac = |h: &str| -> MacAddr {
        match h {
            "trunk" => "02:00:00:00:01:01",
            "v10" => "02:00:00:00:01:10",
            _ => "02:00:00:00:01:20",
        }
        .parse()
        .unwrap()
    };
    for (number, vid, access) in [(1, 10, "v10"), (2, 20, "v20")] {
        // I3: tagged N on the trunk arrives untagged in VLAN N.
        let mark = marker("subif", number);
        let tagged = FrameBuilder::new(BCAST, mac("trunk"))
            .tag(Tci::new(4, false, vid))
            .payload(&mark)
            .build();
        let plain = FrameBuilder::new(BCAST, mac("trunk"))
            .payload(&mark)
            .build();
        expect_delivery(
            &sockets,
            "trunk",
            &tagged,
            &mark,
            &[(access, plain)],
            &format!("I3 vid {vid}"),
        );
        // E4: untagged from the access host leaves the trunk tagged N.
        let mark = marker("subif", number + 10);
        let plain = FrameBuilder::new(BCAST, mac(access)).payload(&mark).build();
        let tagged = FrameBuilder::new(BCAST, mac(access))
            .tag(tag(vid))
            .payload(&mark)
            .build();
        expect_delivery(
            &sockets,
            access,
            &plain,
            &mark,
            &[("trunk", tagged)],
            &format!("E4 vid {vid}"),
        );
    }
    // A tag no sub-interface claims, and no trunk port: no_port.
    let mark = marker("subif", 30);
    let stray = FrameBuilder::new(BCAST, mac("trunk"))
        .tag(tag(30))
        .payload(&mark)
        .build();
    expect_delivery(
        &sockets,
        "trunk",
        &stray,
        &mark,
        &[],
        "VLAN 30 on the trunk",
    );
    let stats = lab.stats_when("brsub", |s| s.no_port >= 1);
    assert!(stats.no_port >= 1, "{stats:?}");
}

// spec: E5 (a tagged member sub-interface leaves double-tagged)
#[test]
fn sub_interface_with_a_tagged_vlan_double_tags() {
    let Some(lab) = Lab::running(
        "sub_interface_with_a_tagged_vlan_double_tags",
        "bridge/tests/topologies/e5.toml",
        &["bre5"],
        &[],
    ) else {
        return;
    };
    let sockets: BTreeMap<&str, PacketSocket> = ["tr", "far"]
        .iter()
        .map(|h| (*h, lab.socket(h, "eth0")))
        .collect();
    let far: MacAddr = "02:00:00:00:05:02".parse().unwrap();
    for (number, vid) in [(1, 20), (2, 10)] {
        let mark = marker("e5", number);
        let sent = FrameBuilder::new(BCAST, far)
            .tag(Tci::new(5, false, vid))
            .payload(&mark)
            .build();
        let double = FrameBuilder::new(BCAST, far)
            .tag(tag(10))
            .tag(Tci::new(5, false, vid))
            .payload(&mark)
            .build();
        expect_delivery(
            &sockets,
            "far",
            &sent,
            &mark,
            &[("tr", double)],
            &format!("E5 vid {vid}"),
        );
    }
}

// Clean exit: SIGTERM detaches every XDP program and exits 0.
#[test]
fn sigterm_detaches_everything_and_exits_zero() {
    let Some(mut lab) = Lab::running(
        "sigterm_detaches_everything_and_exits_zero",
        "topologies/two-namespaces.toml",
        &["br0"],
        &[],
    ) else {
        return;
    };
    let bridge_ns = lab.ns("br0");
    assert_eq!(
        lab.xdp_attached(&bridge_ns).len(),
        2,
        "both ports have the program while running"
    );
    lab.assert_reaches("ns1", "192.168.50.2");
    assert_eq!(
        lab.stop(),
        Some(0),
        "exit code after SIGTERM: {}",
        lab.log_text()
    );
    assert!(lab.xdp_attached(&bridge_ns).is_empty(), "XDP left attached");
    assert!(!xbridge::runtime::pid_path(&lab.bridge("br0")).exists());
    assert!(
        !xbridge::control::socket_path(&lab.bridge("br0")).exists(),
        "control socket left"
    );
    assert!(!lab.ping("ns1", "192.168.50.2", 1), "no bridge, no ping");
}

// Multi-queue veths: queue i of every port goes to worker i.
#[test]
fn two_queues_run_two_workers() {
    let Some(lab) = Lab::running(
        "two_queues_run_two_workers",
        "bridge/tests/topologies/two-queues.toml",
        &["brq"],
        &["--workers", "2"],
    ) else {
        return;
    };
    lab.assert_reaches("ns1", "192.168.50.2");
    let stats = lab.stats_when("brq", |s| {
        s.ports["p1"].rx_frames > 0 && s.ports["p2"].rx_frames > 0
    });
    assert_eq!(stats.workers, 2, "{}", lab.log_text());
    // Sockets on both queues of both ports: nothing falls on a queue
    // without one.
    for port in ["p1", "p2"] {
        assert_eq!(
            stats.ports[port]
                .xdp
                .get("xdp_drop_no_socket")
                .copied()
                .unwrap_or(0),
            0,
            "{stats:?}"
        );
    }
}

// Every worker needs a socket on every port, so asking for more workers
// than the ports have queues runs fewer, says so, and still forwards.
#[test]
fn more_workers_than_queues_runs_fewer_and_still_forwards() {
    let Some(lab) = Lab::running(
        "more_workers_than_queues_runs_fewer_and_still_forwards",
        "topologies/two-namespaces.toml",
        &["br0"],
        &["--workers", "2"],
    ) else {
        return;
    };
    lab.assert_reaches("ns1", "192.168.50.2");
    assert_eq!(lab.stats_when("br0", |s| s.workers == 1).workers, 1);
    assert!(
        lab.log_text().contains("running 1 worker(s), not 2"),
        "{}",
        lab.log_text()
    );
}

// A missing interface is a clear error, and nothing stays attached.
#[test]
fn a_missing_interface_fails_cleanly_with_nothing_attached() {
    if !privileged("a_missing_interface_fails_cleanly_with_nothing_attached") {
        return;
    }
    let lab = Lab::up("topologies/two-namespaces.toml", "xbridge");
    let bridge_ns = lab.ns("br0");
    let deleted = std::process::Command::new("ip")
        .args(["-n", &bridge_ns, "link", "del", "dev", "p2"])
        .status()
        .unwrap();
    assert!(deleted.success());
    let out = common::xbridge(&[
        "run",
        common::repo_file("topologies/two-namespaces.toml")
            .to_str()
            .unwrap(),
        "--prefix",
        &lab.prefix,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interface p2 of bridge") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(
        lab.xdp_attached(&bridge_ns).is_empty(),
        "p1 must not keep the program"
    );
}

// `xbridge bench`, short: both backends measured, JSON sane, sequence
// checks clean at a low rate.
#[test]
fn a_short_bench_measures_both_backends() {
    if !privileged("a_short_bench_measures_both_backends") {
        return;
    }
    let json = std::env::temp_dir().join(format!("xbridge-bench-test-{}.json", std::process::id()));
    let plot = json.with_extension("svg");
    let out = common::xbridge(&[
        "bench",
        "--sizes",
        "64",
        "--pairs",
        "1",
        "--trial-secs",
        "1",
        "--rate",
        "20000",
        "--no-rfc2544",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["schema"], "xbridge-bench/1");
    let results = report["results"].as_array().unwrap();
    for backend in ["xbridge", "kernel"] {
        let result = results
            .iter()
            .find(|r| r["backend"] == backend && r["case"] == "untagged" && r["frame_size"] == 64)
            .unwrap_or_else(|| panic!("{backend} missing: {report}"));
        for trial in result["trials"].as_array().unwrap() {
            let (sent, received) = (
                trial["sent"].as_u64().unwrap(),
                trial["received"].as_u64().unwrap(),
            );
            assert!(sent > 5_000, "{backend}: the generator ran ({sent})");
            assert!(received <= sent, "{backend}: delivered <= offered");
            assert_eq!(received, sent, "{backend}: no loss at 20 kpps");
            assert_eq!(trial["reordered"], 0, "{backend}");
            assert_eq!(trial["duplicates"], 0, "{backend}");
            assert!(trial["latency"]["p50_ns"].as_u64().unwrap() > 0);
        }
        assert!(result["delivered_mpps"]["median"].as_f64().unwrap() > 0.0);
    }
    let ratio = &report["ratios"]["64"];
    assert!(
        ratio["delivered_mpps"]["median"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(ratio["cpu_ns_per_packet"]["median"].as_f64().unwrap() > 0.0);
    // The VLAN case: xbridge always; the kernel only with vlan_filtering.
    let vlan_kernel = results
        .iter()
        .any(|r| r["case"] == "vlan" && r["backend"] == "kernel");
    let skipped = report["not_measured"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["backend"] == "kernel");
    assert!(results
        .iter()
        .any(|r| r["case"] == "vlan" && r["backend"] == "xbridge"));
    assert!(vlan_kernel != skipped, "either measured or said why not");
    let svg = std::fs::read_to_string(&plot).unwrap();
    let _ = std::fs::remove_file(&plot);
    assert!(svg.starts_with("<svg") && svg.contains("xbridge") && svg.contains("kernel"));
    common::assert_no_namespaces_with("xbench-", "the bench");
}

// The bench sink's sequence checks, on real frames in both payload formats:
// xbridge's generator (native order) and kernel pktgen's header (network
// order, its own stream).
#[test]
fn the_bench_sink_counts_loss_reordering_and_duplicates() {
    if !privileged("the_bench_sink_counts_loss_reordering_and_duplicates") {
        return;
    }
    use xbridge::wire::{UdpFrameSpec, UDP_PAYLOAD_OFFSET};
    let lab = Lab::up("topologies/two-namespaces.toml", "xbridge");
    let bridge_ns = lab.ns("br0");
    let sink = xbridge::sys::netns::within(&bridge_ns, || {
        let ifindex = xbridge::sys::if_index("p1")?;
        xbridge_ebpf::bench::Sink::attach("p1", ifindex).map_err(std::io::Error::other)
    })
    .expect("sink attached");
    let socket = lab.socket("ns1", "eth0");
    let spec = UdpFrameSpec {
        dst_mac: MacAddr([2, 0, 0, 0, 0xbe, 2]),
        src_mac: MacAddr([2, 0, 0, 0, 0xbe, 1]),
        src_ip: std::net::Ipv4Addr::new(192, 168, 50, 1),
        dst_ip: std::net::Ipv4Addr::new(192, 168, 50, 2),
        src_port: 40000,
        dst_port: 9,
        wire_size: 64,
    };
    let ours = |seq: u32| {
        let mut frame = spec.build();
        let payload = &mut frame[UDP_PAYLOAD_OFFSET..];
        payload[0..4].copy_from_slice(&0x7862_7231u32.to_ne_bytes());
        payload[4..8].copy_from_slice(&seq.to_ne_bytes());
        payload[8..16].copy_from_slice(&1u64.to_ne_bytes()); // sent long ago
        payload[16..18].copy_from_slice(&3u16.to_ne_bytes());
        frame
    };
    let pktgen = |seq: u32| {
        let mut frame = spec.build();
        let payload = &mut frame[UDP_PAYLOAD_OFFSET..];
        payload[0..4].copy_from_slice(&0xbe9b_e955u32.to_be_bytes());
        payload[4..8].copy_from_slice(&seq.to_be_bytes());
        frame
    };
    // Stream 3: 1 2 3 5 4 4 -> 5 distinct, one late (reordered), one twice.
    for seq in [1, 2, 3, 5, 4, 4] {
        socket.send(&ours(seq)).unwrap();
    }
    for seq in [10, 11, 13] {
        socket.send(&pktgen(seq)).unwrap();
    }
    let deadline = std::time::Instant::now() + ARRIVE;
    let counts = loop {
        let counts = sink.counts().unwrap();
        if counts.frames >= 9 || std::time::Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stream = counts.streams[3];
    assert_eq!((stream.highest, stream.received), (5, 5), "{counts:?}");
    assert_eq!((stream.reordered, stream.duplicates), (1, 1), "{counts:?}");
    let pktgen_stream = counts.streams[xbridge_ebpf::bench::MAX_STREAMS - 1];
    assert_eq!(
        (pktgen_stream.highest, pktgen_stream.received),
        (13, 3),
        "{counts:?}"
    );
    // Latency is recorded for our frames only (pktgen's clock differs).
    assert_eq!(counts.latency.iter().sum::<u64>(), 6);
}
