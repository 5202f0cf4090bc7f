//! The forwarding contract (`shared/spec/vlan-semantics.md`) checked against
//! the I/O-free pipeline, item by item. Each test names the items it covers.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use xbridge::config::{
    Accept, BridgeConfig, EgressMode::Tagged, EgressMode::Untagged, PortConfig, PortFlags, PortId,
    StaticEntry, Vid,
};
use xbridge::fdb::{Fdb, LearnOutcome, Millis};
use xbridge::pipeline::{Decision, DropReason, InterfaceId, Pipeline, Verdict};
use xbridge::wire::{self, EthernetFrame, FrameBuilder, MacAddr, Tci, TPID_8021AD};

const BCAST: MacAddr = MacAddr::BROADCAST;

fn host(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

fn bridge(ports: Vec<PortConfig>) -> BridgeConfig {
    BridgeConfig {
        name: "br-test".into(),
        vlan_filtering: true,
        ageing_time: Duration::from_secs(300),
        fdb_max_learned: 1024,
        ports,
        static_fdb: vec![],
    }
    .validate()
    .unwrap()
}

/// The spec's reference scenario, ports A-E (green 10, pink 20, blue 30).
fn scenario_a_to_e() -> BridgeConfig {
    bridge(vec![
        PortConfig::trunk("a").with_vlan(10, Untagged).with_pvid(10),
        PortConfig::trunk("b")
            .with_vlan(10, Untagged)
            .with_vlan(30, Untagged)
            .with_pvid(10),
        PortConfig::trunk("c").with_vlan(20, Untagged).with_pvid(20),
        PortConfig::trunk("d").with_vlan(10, Untagged).with_pvid(30),
        PortConfig::trunk("e")
            .with_vlan(10, Tagged)
            .with_vlan(20, Tagged)
            .with_vlan(30, Tagged),
    ])
}

/// The pipeline plus an FDB: sends frames by interface name and returns what
/// leaves each port, bytes included.
struct Bench {
    pipeline: Pipeline,
    fdb: Fdb,
    now: Millis,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Out(BTreeMap<String, Vec<u8>>),
    Dropped(DropReason),
}

impl Bench {
    fn new(config: BridgeConfig) -> Bench {
        let fdb = Fdb::new(config.fdb_max_learned);
        let pipeline = Pipeline::new(config);
        pipeline.install_static_entries(&fdb).unwrap();
        Bench {
            pipeline,
            fdb,
            now: Millis(0),
        }
    }

    fn decide(&self, interface: &str, bytes: &[u8]) -> Decision {
        let id = self.pipeline.interface_id(interface).expect("interface");
        self.pipeline.decide(id, bytes, &self.fdb, self.now)
    }

    fn send(&self, interface: &str, bytes: &[u8]) -> Outcome {
        let decision = self.decide(interface, bytes);
        match decision.verdict {
            Verdict::Drop { reason, .. } => Outcome::Dropped(reason),
            Verdict::Forward(forward) => {
                let mut out = BTreeMap::new();
                for port in forward.egress.iter() {
                    let edit = self.pipeline.egress_edit(&forward, port);
                    let mut copy = vec![0u8; bytes.len() + 16];
                    let len = wire::copy_edited(bytes, &edit, &mut copy).unwrap();
                    copy.truncate(len);
                    out.insert(self.pipeline.config().port(port).name.clone(), copy);
                }
                Outcome::Out(out)
            }
        }
    }
}

fn frame(src: MacAddr, dst: MacAddr) -> FrameBuilder {
    FrameBuilder::new(dst, src)
}

fn tag(vid: u16) -> Tci {
    Tci::new(0, false, vid)
}

fn out(pairs: &[(&str, Vec<u8>)]) -> Outcome {
    Outcome::Out(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn names(outcome: Outcome) -> Vec<String> {
    match outcome {
        Outcome::Out(copies) => copies.into_keys().collect(),
        Outcome::Dropped(reason) => vec![format!("dropped: {}", reason.name())],
    }
}

// --- The reference scenario, row by row ---

// spec: I2, E1, E2, E3
#[test]
fn ae_row1_untagged_from_a_reaches_b_d_untagged_and_e_tagged_10() {
    let bench = Bench::new(scenario_a_to_e());
    let untagged = frame(host(1), BCAST).build();
    let tagged10 = frame(host(1), BCAST).tag(tag(10)).build();
    assert_eq!(
        bench.send("a", &untagged),
        out(&[
            ("b", untagged.clone()),
            ("d", untagged.clone()),
            ("e", tagged10)
        ])
    );
}

// spec: I2, E1, E3
#[test]
fn ae_row2_untagged_from_c_reaches_only_e_tagged_20() {
    let bench = Bench::new(scenario_a_to_e());
    let untagged = frame(host(3), BCAST).build();
    assert_eq!(
        bench.send("c", &untagged),
        out(&[("e", frame(host(3), BCAST).tag(tag(20)).build())])
    );
}

// spec: I4 (the article's port D: its PVID is admitted though not a member)
#[test]
fn ae_row3_untagged_from_d_enters_blue_reaches_b_and_e_tagged_30() {
    let bench = Bench::new(scenario_a_to_e());
    let untagged = frame(host(4), BCAST).build();
    assert_eq!(
        bench.send("d", &untagged),
        out(&[
            ("b", untagged.clone()),
            ("e", frame(host(4), BCAST).tag(tag(30)).build())
        ])
    );
}

// spec: I4, E1 ("no way back" to D for blue)
#[test]
fn ae_row4_tagged_30_from_e_reaches_b_untagged_never_d() {
    let bench = Bench::new(scenario_a_to_e());
    let tagged = frame(host(5), BCAST).tag(tag(30)).build();
    let decision = bench.decide("e", &tagged);
    assert_eq!(
        bench.send("e", &tagged),
        out(&[("b", frame(host(5), BCAST).build())])
    );
    let d = bench.pipeline.config().port_id("d").unwrap();
    assert!(
        decision.egress_filtered.contains(d),
        "D is withheld by egress filtering"
    );
}

// spec: E2
#[test]
fn ae_row5_tagged_20_from_e_reaches_c_untagged() {
    let bench = Bench::new(scenario_a_to_e());
    let tagged = frame(host(5), BCAST).tag(tag(20)).build();
    assert_eq!(
        bench.send("e", &tagged),
        out(&[("c", frame(host(5), BCAST).build())])
    );
}

// spec: E2
#[test]
fn ae_row6_tagged_10_from_e_reaches_a_b_d_untagged() {
    let bench = Bench::new(scenario_a_to_e());
    let tagged = frame(host(5), BCAST).tag(tag(10)).build();
    let plain = frame(host(5), BCAST).build();
    assert_eq!(
        bench.send("e", &tagged),
        out(&[("a", plain.clone()), ("b", plain.clone()), ("d", plain)])
    );
}

// spec: I4
#[test]
fn ae_row7_tagged_20_from_a_is_dropped_by_ingress_filter() {
    let bench = Bench::new(scenario_a_to_e());
    let tagged = frame(host(1), BCAST).tag(tag(20)).build();
    assert_eq!(
        bench.send("a", &tagged),
        Outcome::Dropped(DropReason::IngressFilter)
    );
}

// spec: I2
#[test]
fn ae_row8_untagged_from_e_is_dropped_no_pvid() {
    let bench = Bench::new(scenario_a_to_e());
    assert_eq!(
        bench.send("e", &frame(host(5), BCAST).build()),
        Outcome::Dropped(DropReason::NoPvid)
    );
}

// spec: I2, E3 (priority-tagged keeps its PCP on tagged egress)
#[test]
fn ae_row9_priority_tagged_from_a_keeps_pcp_on_e() {
    let bench = Bench::new(scenario_a_to_e());
    let prio = frame(host(1), BCAST).tag(Tci::new(3, false, 0)).build();
    let plain = frame(host(1), BCAST).build();
    assert_eq!(
        bench.send("a", &prio),
        out(&[
            ("b", plain.clone()),
            ("d", plain),
            (
                "e",
                frame(host(1), BCAST).tag(Tci::new(3, false, 10)).build()
            )
        ])
    );
}

// spec: E3
#[test]
fn ae_row10_tagged_10_pcp5_from_b_keeps_pcp_and_dei_on_e() {
    let bench = Bench::new(scenario_a_to_e());
    let tagged = frame(host(2), BCAST).tag(Tci::new(5, true, 10)).build();
    let plain = frame(host(2), BCAST).build();
    assert_eq!(
        bench.send("b", &tagged),
        out(&[("a", plain.clone()), ("d", plain), ("e", tagged.clone())])
    );
}

// spec: I1 (nothing past the outer tag is interpreted), X1
#[test]
fn ae_row11_double_tag_from_a_keeps_inner_tag() {
    let bench = Bench::new(scenario_a_to_e());
    let double = frame(host(1), BCAST).tag(tag(10)).tag(tag(20)).build();
    let inner_only = frame(host(1), BCAST).tag(tag(20)).build();
    assert_eq!(
        bench.send("a", &double),
        out(&[
            ("b", inner_only.clone()),
            ("d", inner_only),
            ("e", double.clone())
        ])
    );
}

// spec: I5 (accept untagged stops the double-tag VLAN hop of row 11)
#[test]
fn i5_accept_untagged_stops_vlan_hopping() {
    let mut config = scenario_a_to_e();
    config.ports[0].accept = Accept::Untagged;
    let bench = Bench::new(config);
    let double = frame(host(1), BCAST).tag(tag(10)).tag(tag(20)).build();
    assert_eq!(
        bench.send("a", &double),
        Outcome::Dropped(DropReason::FrameType)
    );
    // priority-tagged frames carry VID 0: still admitted on an access port
    let prio = frame(host(1), BCAST).tag(Tci::new(2, false, 0)).build();
    assert_eq!(names(bench.send("a", &prio)), ["b", "d", "e"]);
}

// spec: I5
#[test]
fn i5_accept_tagged_drops_untagged_and_priority_tagged() {
    let mut config = scenario_a_to_e();
    config.ports[1].accept = Accept::Tagged;
    let bench = Bench::new(config);
    for bytes in [
        frame(host(2), BCAST).build(),
        frame(host(2), BCAST).tag(Tci::new(4, false, 0)).build(),
    ] {
        assert_eq!(
            bench.send("b", &bytes),
            Outcome::Dropped(DropReason::FrameType)
        );
    }
    assert_eq!(
        names(bench.send("b", &frame(host(2), BCAST).tag(tag(30)).build())),
        ["e"]
    );
}

// spec: I1
#[test]
fn i1_runts_are_malformed() {
    let bench = Bench::new(scenario_a_to_e());
    assert_eq!(
        bench.send("a", &[0xff; 13]),
        Outcome::Dropped(DropReason::Malformed)
    );
    let mut truncated = frame(host(1), BCAST).tag(tag(10)).build();
    truncated.truncate(17);
    assert_eq!(
        bench.send("a", &truncated),
        Outcome::Dropped(DropReason::Malformed)
    );
}

// spec: I2
#[test]
fn i2_vid_4095_is_dropped_and_8021ad_is_payload() {
    let bench = Bench::new(scenario_a_to_e());
    assert_eq!(
        bench.send("e", &frame(host(5), BCAST).tag(tag(4095)).build()),
        Outcome::Dropped(DropReason::BadVid)
    );
    // An 802.1ad tag is payload: the frame is untagged, so A's PVID applies.
    let qinq = frame(host(1), BCAST)
        .tag_with_tpid(TPID_8021AD, tag(20))
        .build();
    let Outcome::Out(copies) = bench.send("a", &qinq) else {
        panic!("an 802.1ad frame is forwarded in A's PVID");
    };
    assert_eq!(copies["b"], qinq);
    assert_eq!(
        copies["e"],
        frame(host(1), BCAST)
            .tag(tag(10))
            .tag_with_tpid(TPID_8021AD, tag(20))
            .build()
    );
}

// --- sub-interface ports ---

/// A trunk veth `t` carrying VLANs 10 and 20 into sub-interface ports, an
/// access port `x` in VLAN 10 and a trunk `y` tagging 10 and 20.
fn sub_interface_bridge() -> BridgeConfig {
    bridge(vec![
        PortConfig::named("t.10")
            .unwrap()
            .with_vlan(10, Untagged)
            .with_pvid(10),
        PortConfig::named("t.20")
            .unwrap()
            .with_vlan(20, Untagged)
            .with_pvid(20),
        PortConfig::trunk("x").with_vlan(10, Untagged).with_pvid(10),
        PortConfig::trunk("y")
            .with_vlan(10, Tagged)
            .with_vlan(20, Tagged),
    ])
}

// spec: I3, E2, E3
#[test]
fn i3_sub_interface_removes_its_tag_and_classifies_to_its_pvid() {
    let bench = Bench::new(sub_interface_bridge());
    let on_wire = frame(host(1), BCAST).tag(Tci::new(6, false, 10)).build();
    assert_eq!(
        bench.send("t", &on_wire),
        out(&[
            ("x", frame(host(1), BCAST).build()),
            // untagged once the sub-interface took its tag: PCP 0, not 6
            ("y", frame(host(1), BCAST).tag(tag(10)).build()),
        ])
    );
}

// spec: I3 (a single tag cannot choose the VLAN; a double tag is classified
// by its inner tag, which must then pass ingress filtering)
#[test]
fn i3_double_tag_on_a_sub_interface_is_classified_by_the_inner_tag() {
    let bench = Bench::new(sub_interface_bridge());
    let forged = frame(host(1), BCAST).tag(tag(10)).tag(tag(20)).build();
    assert_eq!(
        bench.send("t", &forged),
        Outcome::Dropped(DropReason::IngressFilter)
    );
    let inner10 = frame(host(1), BCAST).tag(tag(10)).tag(tag(10)).build();
    assert_eq!(
        bench.send("t", &inner10),
        out(&[
            ("x", frame(host(1), BCAST).build()),
            ("y", frame(host(1), BCAST).tag(tag(10)).build()),
        ])
    );
}

// spec: E4
#[test]
fn e4_untagged_member_sub_interface_leaves_tagged_with_its_own_vid() {
    let bench = Bench::new(sub_interface_bridge());
    assert_eq!(
        bench.send("y", &frame(host(2), BCAST).tag(tag(20)).build()),
        out(&[("t.20", frame(host(2), BCAST).tag(tag(20)).build())])
    );
    assert_eq!(
        bench.send("x", &frame(host(3), BCAST).build()),
        out(&[
            ("t.10", frame(host(3), BCAST).tag(tag(10)).build()),
            ("y", frame(host(3), BCAST).tag(tag(10)).build()),
        ])
    );
}

// spec: E5
#[test]
fn e5_tagged_member_sub_interface_leaves_double_tagged() {
    let config = bridge(vec![
        PortConfig::named("pt.10")
            .unwrap()
            .with_vlan(20, Tagged)
            .with_vlan(10, Tagged),
        PortConfig::trunk("y")
            .with_vlan(20, Tagged)
            .with_vlan(10, Tagged),
    ]);
    let bench = Bench::new(config);
    assert_eq!(
        bench.send(
            "y",
            &frame(host(2), BCAST).tag(Tci::new(5, false, 20)).build()
        ),
        out(&[(
            "pt.10",
            frame(host(2), BCAST)
                .tag(tag(10))
                .tag(Tci::new(5, false, 20))
                .build()
        )])
    );
    // even when VID == N
    assert_eq!(
        bench.send("y", &frame(host(2), BCAST).tag(tag(10)).build()),
        out(&[(
            "pt.10",
            frame(host(2), BCAST).tag(tag(10)).tag(tag(10)).build()
        )])
    );
}

// spec: port kinds ("any other frame belongs to the trunk port, else no_port")
#[test]
fn frames_no_sub_interface_claims_go_to_the_trunk_or_nowhere() {
    let bench = Bench::new(sub_interface_bridge());
    assert_eq!(
        bench.send("t", &frame(host(1), BCAST).tag(tag(30)).build()),
        Outcome::Dropped(DropReason::NoPort)
    );
    assert_eq!(
        bench.send("t", &frame(host(1), BCAST).build()),
        Outcome::Dropped(DropReason::NoPort)
    );
    let mut with_trunk = sub_interface_bridge();
    with_trunk
        .ports
        .push(PortConfig::trunk("t").with_vlan(20, Untagged).with_pvid(20));
    let bench = Bench::new(with_trunk.validate().unwrap());
    assert_eq!(
        bench.send("t", &frame(host(1), BCAST).build()),
        out(&[
            ("t.20", frame(host(1), BCAST).tag(tag(20)).build()),
            ("y", frame(host(1), BCAST).tag(tag(20)).build()),
        ])
    );
}

// --- reserved addresses ---

// spec: I6
#[test]
fn i6_reserved_group_addresses() {
    let bench = Bench::new(scenario_a_to_e());
    let group = |last: u8| MacAddr([0x01, 0x80, 0xc2, 0, 0, last]);
    // STP BPDUs flood like a broadcast
    assert_eq!(
        names(bench.send("a", &frame(host(1), group(0)).build())),
        ["b", "d", "e"]
    );
    // pause: dropped before learning
    assert_eq!(
        bench.send("a", &frame(host(7), group(1)).build()),
        Outcome::Dropped(DropReason::Pause)
    );
    assert_eq!(bench.fdb.lookup(host(7), 10), None);
    // 02..0F: never forwarded, but learned
    for last in 2..=0x0f {
        assert_eq!(
            bench.send("a", &frame(host(8), group(last)).build()),
            Outcome::Dropped(DropReason::LinkLocal)
        );
    }
    assert_eq!(
        bench.fdb.lookup(host(8), 10),
        bench.pipeline.config().port_id("a")
    );
}

// --- no VLAN filtering ---

// spec: I7
#[test]
fn i7_without_vlan_filtering_frames_pass_untouched_in_one_vlan() {
    let mut config = scenario_a_to_e();
    config.vlan_filtering = false;
    let bench = Bench::new(config);
    let tagged = frame(host(3), BCAST).tag(tag(999)).build();
    let Outcome::Out(copies) = bench.send("c", &tagged) else {
        panic!("forwarded")
    };
    assert_eq!(copies.len(), 4);
    assert!(
        copies.values().all(|copy| copy == &tagged),
        "tags untouched"
    );
    assert_eq!(
        bench.fdb.lookup(host(3), 0),
        bench.pipeline.config().port_id("c")
    );
    // untagged from E (no PVID) is still forwarded
    assert_eq!(
        names(bench.send("e", &frame(host(5), BCAST).build())).len(),
        4
    );
}

// --- learning and forwarding ---

// spec: L1, F1
#[test]
fn l1_f1_a_learned_unicast_reaches_exactly_one_port() {
    let bench = Bench::new(scenario_a_to_e());
    bench.send("b", &frame(host(2), BCAST).build());
    assert_eq!(
        bench.send("a", &frame(host(1), host(2)).build()),
        out(&[("b", frame(host(1), host(2)).build())])
    );
    // the same MAC is unknown in another VLAN: flooded there
    assert_eq!(
        names(bench.send("e", &frame(host(5), host(2)).tag(tag(20)).build())),
        ["c"]
    );
}

// spec: L1
#[test]
fn l1_multicast_or_zero_source_is_dropped_and_dropped_frames_teach_nothing() {
    let bench = Bench::new(scenario_a_to_e());
    assert_eq!(
        bench.send("a", &frame(MacAddr([1, 0, 0x5e, 0, 0, 1]), BCAST).build()),
        Outcome::Dropped(DropReason::BadSrc)
    );
    assert_eq!(
        bench.send("a", &frame(MacAddr::ZERO, BCAST).build()),
        Outcome::Dropped(DropReason::BadSrc)
    );
    assert_eq!(
        bench.send("a", &frame(host(9), BCAST).tag(tag(20)).build()),
        Outcome::Dropped(DropReason::IngressFilter)
    );
    assert_eq!(bench.fdb.learned_count(), 0);
}

// spec: L1 (learning off)
#[test]
fn l1_learning_off_learns_nothing() {
    let mut config = scenario_a_to_e();
    config.ports[1].flags.learning = false;
    let bench = Bench::new(config);
    bench.send("b", &frame(host(2), BCAST).build());
    assert_eq!(bench.fdb.lookup(host(2), 10), None);
}

// spec: L2
#[test]
fn l2_moves_and_static_conflicts() {
    let mut config = scenario_a_to_e();
    config.static_fdb.push(StaticEntry {
        mac: host(9),
        vid: Some(Vid::new(10).unwrap()),
        port: PortId(1),
    });
    let bench = Bench::new(config.validate().unwrap());
    bench.send("a", &frame(host(1), BCAST).build());
    let decision = bench.decide("b", &frame(host(1), BCAST).build());
    assert_eq!(
        decision.learn,
        Some(LearnOutcome::Moved { from: PortId(0) })
    );
    assert_eq!(bench.fdb.moves(), 1);
    assert_eq!(bench.fdb.lookup(host(1), 10), Some(PortId(1)));
    assert_eq!(
        bench.send("a", &frame(host(9), BCAST).build()),
        Outcome::Dropped(DropReason::StaticConflict)
    );
    assert_eq!(bench.fdb.lookup(host(9), 10), Some(PortId(1)));
}

// spec: L3
#[test]
fn l3_limits_stop_learning_not_forwarding() {
    let mut config = scenario_a_to_e();
    config.ports[0].flags.fdb_max_learned = 1;
    let bench = Bench::new(config);
    bench.send("a", &frame(host(1), BCAST).build());
    let decision = bench.decide("a", &frame(host(11), BCAST).build());
    assert_eq!(decision.learn, Some(LearnOutcome::LimitReached));
    assert!(matches!(decision.verdict, Verdict::Forward(_)));
    assert_eq!(bench.fdb.limit_hits(), 1);
}

// spec: L4
#[test]
fn l4_aged_entries_flood_again() {
    let mut bench = Bench::new(scenario_a_to_e());
    bench.send("b", &frame(host(2), BCAST).build());
    assert_eq!(
        names(bench.send("a", &frame(host(1), host(2)).build())),
        ["b"]
    );
    bench.now = Millis(301_000);
    bench.fdb.age(bench.now, Duration::from_secs(300), |_| {});
    assert_eq!(
        names(bench.send("a", &frame(host(1), host(2)).build())),
        ["b", "d", "e"]
    );
}

// spec: F1
#[test]
fn f1_a_frame_for_its_own_port_is_a_hairpin_drop() {
    let bench = Bench::new(scenario_a_to_e());
    bench.send("a", &frame(host(1), BCAST).build());
    assert_eq!(
        bench.send("a", &frame(host(2), host(1)).build()),
        Outcome::Dropped(DropReason::Hairpin)
    );
}

// spec: F2
#[test]
fn f2_flood_flags_per_class() {
    let mut config = scenario_a_to_e();
    config.ports[1].flags = PortFlags {
        flood: false,
        ..PortFlags::default()
    };
    config.ports[3].flags = PortFlags {
        bcast_flood: false,
        mcast_flood: false,
        ..PortFlags::default()
    };
    let bench = Bench::new(config);
    assert_eq!(
        names(bench.send("a", &frame(host(1), host(99)).build())),
        ["d", "e"]
    );
    assert_eq!(
        names(bench.send("a", &frame(host(1), BCAST).build())),
        ["b", "e"]
    );
    let mcast = MacAddr([1, 0, 0x5e, 0, 0, 9]);
    assert_eq!(
        names(bench.send("a", &frame(host(1), mcast).build())),
        ["b", "e"]
    );
}

// spec: F3
#[test]
fn f3_isolated_ports_do_not_talk_to_each_other() {
    let mut config = scenario_a_to_e();
    config.ports[0].flags.isolated = true;
    config.ports[1].flags.isolated = true;
    let bench = Bench::new(config);
    assert_eq!(
        names(bench.send("a", &frame(host(1), BCAST).build())),
        ["d", "e"]
    );
    bench.send("b", &frame(host(2), BCAST).build());
    assert_eq!(
        bench.send("a", &frame(host(1), host(2)).build()),
        Outcome::Dropped(DropReason::Isolated)
    );
    // a port that is not isolated still reaches an isolated one
    assert_eq!(
        names(bench.send("e", &frame(host(5), host(2)).tag(tag(10)).build())),
        ["b"]
    );
}

// spec: E1
#[test]
fn e1_a_known_unicast_outside_the_target_port_vlans_is_egress_filtered() {
    let bench = Bench::new(scenario_a_to_e());
    // host 4 is learned on D in VLAN 30 (its PVID), but D is no member of 30
    bench.send("d", &frame(host(4), BCAST).build());
    assert_eq!(bench.fdb.lookup(host(4), 30), Some(PortId(3)));
    assert_eq!(
        bench.send("e", &frame(host(5), host(4)).tag(tag(30)).build()),
        Outcome::Dropped(DropReason::EgressFilter)
    );
}

// spec: E1
#[test]
fn e1_separated_vlans_never_see_each_others_broadcasts() {
    let bench = Bench::new(bridge(vec![
        PortConfig::trunk("p1")
            .with_vlan(10, Untagged)
            .with_pvid(10),
        PortConfig::trunk("p2")
            .with_vlan(10, Untagged)
            .with_pvid(10),
        PortConfig::trunk("p3")
            .with_vlan(20, Untagged)
            .with_pvid(20),
        PortConfig::trunk("p4")
            .with_vlan(20, Untagged)
            .with_pvid(20),
    ]));
    let decision = bench.decide("p1", &frame(host(1), BCAST).ethertype(0x0806).build());
    let Verdict::Forward(forward) = decision.verdict else {
        panic!("forwarded in VLAN 10")
    };
    assert_eq!(forward.egress.iter().collect::<Vec<_>>(), vec![PortId(1)]);
    assert_eq!(
        decision.egress_filtered.iter().collect::<Vec<_>>(),
        vec![PortId(2), PortId(3)]
    );
}

// spec: X2 (a flood with nowhere to go is counted once, under one reason)
#[test]
fn x2_single_port_flood_is_no_egress() {
    let bench = Bench::new(bridge(vec![PortConfig::trunk("p1")
        .with_vlan(1, Untagged)
        .with_pvid(1)]));
    assert_eq!(
        bench.send("p1", &frame(host(1), BCAST).build()),
        Outcome::Dropped(DropReason::NoEgress)
    );
}

// --- properties ---

fn arbitrary_frame() -> impl Strategy<Value = Vec<u8>> {
    let mac = prop_oneof![
        Just(BCAST),
        Just(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0])),
        Just(MacAddr([0x01, 0x80, 0xc2, 0, 0, 1])),
        Just(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e])),
        Just(MacAddr::ZERO),
        (0u8..6).prop_map(host),
        any::<[u8; 6]>().prop_map(MacAddr),
    ];
    let tpid = prop_oneof![Just(0x8100u16), Just(0x88a8u16), Just(0x0800u16)];
    let vid = prop_oneof![
        Just(0u16),
        Just(10),
        Just(20),
        Just(30),
        Just(4095),
        0u16..4096
    ];
    let tags = prop::collection::vec((tpid, 0u8..8, vid), 0..3);
    let built = (
        mac.clone(),
        mac,
        tags,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(dst, src, tags, payload)| {
            let mut builder = FrameBuilder::new(dst, src).payload(&payload);
            for (tpid, pcp, vid) in tags {
                builder = builder.tag_with_tpid(tpid, Tci::new(pcp, false, vid));
            }
            builder.build()
        });
    prop_oneof![built, prop::collection::vec(any::<u8>(), 0..40)]
}

fn configs() -> impl Strategy<Value = BridgeConfig> {
    let mut unfiltered = scenario_a_to_e();
    unfiltered.vlan_filtering = false;
    prop_oneof![
        Just(scenario_a_to_e()),
        Just(sub_interface_bridge()),
        Just(unfiltered)
    ]
}

proptest! {
    // spec: X1, X2
    #[test]
    fn x1_x2_no_frame_panics_or_changes_past_the_outer_tags(
        config in configs(),
        frames in prop::collection::vec((0usize..5, arbitrary_frame()), 1..20),
    ) {
        let bench = Bench::new(config);
        let interfaces = bench.pipeline.interface_names().count();
        for (which, bytes) in frames {
            let interface = InterfaceId((which % interfaces) as u16);
            let decision = bench.pipeline.decide(interface, &bytes, &bench.fdb, bench.now);
            // X2: a verdict is a drop with exactly one reason, or copies.
            if let Verdict::Forward(forward) = decision.verdict {
                prop_assert!(!forward.egress.is_empty());
                prop_assert!(!forward.egress.contains(forward.ingress));
                prop_assert!(EthernetFrame::new_checked(&bytes).is_ok());
                for port in forward.egress.iter() {
                    let edit = bench.pipeline.egress_edit(&forward, port);
                    let mut copy = vec![0u8; bytes.len() + 8];
                    let len = wire::copy_edited(&bytes, &edit, &mut copy).unwrap();
                    // X1: addresses and all past the consumed tags unchanged
                    prop_assert_eq!(&copy[..12], &bytes[..12]);
                    prop_assert_eq!(
                        &copy[12 + 4 * edit.pushed()..len],
                        &bytes[12 + 4 * usize::from(forward.consumed_tags)..]
                    );
                    // in place gives the same bytes as the copy
                    let mut buffer = vec![0u8; 16 + bytes.len()];
                    buffer[16..].copy_from_slice(&bytes);
                    let (start, new_len) = wire::apply_in_place(&mut buffer, 16, bytes.len(), &edit).unwrap();
                    prop_assert_eq!(&buffer[start..start + new_len], &copy[..len]);
                }
            }
        }
    }
}
