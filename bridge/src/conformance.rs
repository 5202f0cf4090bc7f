//! The conformance oracle: the same scenario through the real Linux bridge
//! (`vlan_filtering 1`, in a VM running a stock kernel, driven by the
//! `xbridge-probe` binary) and through xbridge's pipeline, frame by frame.
//!
//! This module holds the scenario model shared with the probe, xbridge's
//! side of a run, and the comparison; `vm.rs` boots the VM.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{BridgeConfig, EgressMode, PortConfig, Vid};
use crate::fdb::{Fdb, Millis};
use crate::pipeline::{Pipeline, Verdict};
use crate::wire;

/// One bridge port of a scenario: `IF` (trunk) or `IF.N` (sub-interface).
/// Names have at least two letters (`ip` parses some single letters as
/// keywords).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioPort {
    pub name: String,
    /// (VID, untagged)
    pub vlans: Vec<(u16, bool)>,
    pub pvid: Option<u16>,
}

/// A frame sent into the bridge through an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioFrame {
    /// The bridge-side interface it enters through (a trunk port's name, or
    /// the `IF` of sub-interface ports).
    pub interface: String,
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// A bridge and the frames to send, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub ports: Vec<ScenarioPort>,
    pub frames: Vec<ScenarioFrame>,
}

/// What left the bridge for one frame: interface -> frames (sorted), as
/// seen on the wire of that interface.
pub type Emitted = BTreeMap<String, Vec<Vec<u8>>>;

/// A learned FDB entry: (MAC, VLAN, port).
pub type FdbRow = (String, u16, String);

/// The entries of `fdb` as the oracle compares them, sorted.
pub fn fdb_rows(fdb: &crate::fdb::Fdb, config: &BridgeConfig) -> Vec<FdbRow> {
    let mut rows: Vec<FdbRow> = fdb
        .entries()
        .into_iter()
        .map(|e| (e.mac.to_string(), e.vid, config.port(e.port).name.clone()))
        .collect();
    rows.sort();
    rows
}

/// A scenario's outcome: per frame, what was emitted; then the dynamic FDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    pub frames: Vec<EmittedHex>,
    #[serde(default)]
    pub fdb: Vec<FdbRow>,
}

/// `Emitted` with hex strings, for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmittedHex(pub BTreeMap<String, Vec<String>>);

impl From<&Emitted> for EmittedHex {
    fn from(emitted: &Emitted) -> Self {
        EmittedHex(
            emitted
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(|b| hex(b)).collect()))
                .collect(),
        )
    }
}

impl EmittedHex {
    /// Back to bytes (entries that are not hex are skipped).
    pub fn decode(&self) -> Emitted {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().filter_map(|h| unhex(h)).collect()))
            .collect()
    }
}

pub use crate::wire::{hex, unhex};

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::unhex(&text).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

impl Scenario {
    /// The bridge-side interfaces (veth ends) the scenario needs.
    pub fn interfaces(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for port in &self.ports {
            let interface = port
                .name
                .split('.')
                .next()
                .unwrap_or(&port.name)
                .to_string();
            if !names.contains(&interface) {
                names.push(interface);
            }
        }
        names
    }

    /// xbridge's configuration for the scenario.
    pub fn bridge_config(&self) -> Result<BridgeConfig, crate::config::ConfigError> {
        let mut ports = Vec::new();
        for port in &self.ports {
            let mut config = PortConfig::named(&port.name)?;
            for (vid, untagged) in &port.vlans {
                let vid = Vid::new(i64::from(*vid)).map_err(|source| {
                    crate::config::ConfigError::Vid {
                        port: port.name.clone(),
                        source,
                    }
                })?;
                config.vlans.insert(
                    vid,
                    if *untagged {
                        EgressMode::Untagged
                    } else {
                        EgressMode::Tagged
                    },
                );
            }
            config.pvid = port
                .pvid
                .map(|v| Vid::new(i64::from(v)))
                .transpose()
                .map_err(|source| crate::config::ConfigError::Vid {
                    port: port.name.clone(),
                    source,
                })?;
            ports.push(config);
        }
        BridgeConfig {
            name: self.name.clone(),
            vlan_filtering: true,
            ageing_time: Duration::from_secs(300),
            fdb_max_learned: 65536,
            ports,
            static_fdb: vec![],
        }
        .validate()
    }

    /// What xbridge's pipeline emits for each frame, in order.
    pub fn run_pipeline(&self) -> Result<Vec<Emitted>, crate::config::ConfigError> {
        self.run_pipeline_with(|_| {})
    }

    /// The FDB xbridge's pipeline holds after all frames, sorted.
    pub fn pipeline_fdb(&self) -> Result<Vec<FdbRow>, crate::config::ConfigError> {
        Ok(self.simulate(|_| {})?.1)
    }

    /// The same with the configuration changed by `mutate` first: a
    /// deliberately wrong bridge, to show the comparison can fail.
    pub fn run_pipeline_with(
        &self,
        mutate: impl FnOnce(&mut BridgeConfig),
    ) -> Result<Vec<Emitted>, crate::config::ConfigError> {
        Ok(self.simulate(mutate)?.0)
    }

    /// Runs every frame through xbridge's pipeline: what each emitted, and
    /// the FDB at the end (sorted).
    fn simulate(
        &self,
        mutate: impl FnOnce(&mut BridgeConfig),
    ) -> Result<(Vec<Emitted>, Vec<FdbRow>), crate::config::ConfigError> {
        let mut config = self.bridge_config()?;
        mutate(&mut config);
        let fdb = Fdb::new(config.fdb_max_learned);
        let pipeline = Pipeline::new(config);
        let mut out = Vec::new();
        for frame in &self.frames {
            let mut emitted = Emitted::new();
            let Some(interface) = pipeline.interface_id(&frame.interface) else {
                out.push(emitted);
                continue;
            };
            let decision = pipeline.decide(interface, &frame.bytes, &fdb, Millis(0));
            if let Verdict::Forward(forward) = decision.verdict {
                for port in forward.egress.iter() {
                    let edit = pipeline.egress_edit(&forward, port);
                    let mut copy = vec![0u8; frame.bytes.len() + 16];
                    if let Ok(len) = wire::copy_edited(&frame.bytes, &edit, &mut copy) {
                        copy.truncate(len);
                        let config = pipeline.config().port(port);
                        emitted
                            .entry(config.interface.clone())
                            .or_default()
                            .push(copy);
                    }
                }
            }
            for frames in emitted.values_mut() {
                frames.sort();
            }
            out.push(emitted);
        }
        Ok((out, fdb_rows(&fdb, pipeline.config())))
    }

    /// Ports whose PVID is not a member: Linux cannot express them (its PVID
    /// is always a member), so frames of that VLAN leave them on the kernel.
    pub fn asymmetric_pvid_ports(&self) -> Vec<(String, u16)> {
        self.ports
            .iter()
            .filter_map(|p| {
                let pvid = p.pvid?;
                (!p.vlans.iter().any(|(vid, _)| *vid == pvid)).then(|| (p.name.clone(), pvid))
            })
            .collect()
    }
}

/// Why xbridge may differ from the kernel on purpose (spec I4: the article's
/// port D). Matched by rule, never by silencing a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deviation {
    pub rule: &'static str,
    pub reason: String,
}

/// How one frame's two outcomes compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Comparison {
    Agree,
    Deviation(Deviation),
    Mismatch,
}

/// Compares one frame's outcomes, and names the known deviation when the
/// difference is one. The known deviations, each with its reason:
///
/// - `asymmetric-pvid` (spec I4, the article's port D): Linux makes a PVID a
///   member, so frames of that VLAN leave a port whose PVID is not a member
///   on the kernel, never on xbridge. Matched when every frame only the
///   kernel emitted left through such a port and all else is equal. (The
///   same gap lets the kernel admit frames tagged with that PVID and learn
///   from them, which changes later frames; random scenarios therefore give
///   every PVID membership, and the A-E scenario covers the case.)
/// - `priority-tag-before-sub-interface`: a frame whose outer tag is a
///   priority tag (VID 0) and whose next tag is 802.1Q VID N goes to `IF.N`
///   on Linux (net/core/dev.c strips the 802.1p header and retries the VLAN
///   device lookup); the spec gives `IF.N` only frames whose outer tag is N,
///   so xbridge hands it to the trunk port of IF, or drops it (`no_port`).
pub fn compare(
    scenario: &Scenario,
    index: usize,
    xbridge: &Emitted,
    kernel: &Emitted,
) -> Comparison {
    if xbridge == kernel {
        return Comparison::Agree;
    }
    if let Some(frame) = scenario.frames.get(index) {
        let parsed = wire::EthernetFrame::new_checked(&frame.bytes).ok();
        let outer = parsed.and_then(|f| f.outer_tag());
        let inner = parsed.and_then(|f| f.tag_at(1));
        if let (Some(outer), Some(inner)) = (outer, inner) {
            let sub_interface = format!("{}.{}", frame.interface, inner.vid());
            if outer.vid() == 0 && scenario.ports.iter().any(|p| p.name == sub_interface) {
                return Comparison::Deviation(Deviation {
                    rule: "priority-tag-before-sub-interface",
                    reason: "Linux retries the VLAN device lookup with the inner tag after a priority tag".into(),
                });
            }
        }
    }
    let asymmetric = scenario.asymmetric_pvid_ports();
    let mut explained = true;
    for (interface, frames) in kernel {
        let ours = xbridge.get(interface).cloned().unwrap_or_default();
        if &ours == frames {
            continue;
        }
        let port_pvid = asymmetric.iter().find(|(name, _)| name == interface);
        explained &= ours.is_empty() && port_pvid.is_some();
    }
    explained &= xbridge.keys().all(|k| kernel.get(k) == xbridge.get(k));
    if explained {
        Comparison::Deviation(Deviation {
            rule: "asymmetric-pvid",
            reason: "Linux makes a PVID a member; xbridge lets no frame of a non-member PVID leave (spec I4)".into(),
        })
    } else {
        Comparison::Mismatch
    }
}

fn port(name: &str, vlans: &[(u16, bool)], pvid: Option<u16>) -> ScenarioPort {
    ScenarioPort {
        name: name.into(),
        vlans: vlans.to_vec(),
        pvid,
    }
}

/// Broadcast frames from `(interface, source, tags outermost first)` rows,
/// each with a payload naming `label` and its row.
fn broadcast_rows(
    label: &str,
    rows: Vec<(&str, crate::wire::MacAddr, Vec<crate::wire::Tci>)>,
) -> Vec<ScenarioFrame> {
    use crate::wire::{FrameBuilder, MacAddr};
    rows.into_iter()
        .enumerate()
        .map(|(n, (interface, src, tags))| ScenarioFrame {
            interface: interface.into(),
            bytes: tags
                .iter()
                .fold(FrameBuilder::new(MacAddr::BROADCAST, src), |b, t| b.tag(*t))
                .payload(format!("xbridge-conformance {label} {}", n + 1).as_bytes())
                .build(),
        })
        .collect()
}

/// The spec's reference scenario A-E with the frames of its table.
pub fn reference_scenario() -> Scenario {
    use crate::wire::{MacAddr, Tci};
    let ports = vec![
        port("pa", &[(10, true)], Some(10)),
        port("pb", &[(10, true), (30, true)], Some(10)),
        port("pc", &[(20, true)], Some(20)),
        port("pd", &[(10, true)], Some(30)),
        port("pe", &[(10, false), (20, false), (30, false)], None),
    ];
    let mac = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
    let tag = |vid| Tci::new(0, false, vid);
    let frames = broadcast_rows(
        "row",
        vec![
            ("pa", mac(0x0a), vec![]),
            ("pc", mac(0x0c), vec![]),
            ("pd", mac(0x0d), vec![]),
            ("pe", mac(0x0e), vec![tag(30)]),
            ("pe", mac(0x0e), vec![tag(20)]),
            ("pe", mac(0x0e), vec![tag(10)]),
            ("pa", mac(0x0a), vec![tag(20)]),
            ("pe", mac(0x0e), vec![]),
            ("pa", mac(0x0a), vec![Tci::new(3, false, 0)]),
            ("pb", mac(0x0b), vec![Tci::new(5, false, 10)]),
            ("pa", mac(0x0a), vec![tag(10), tag(20)]),
        ],
    );
    Scenario {
        name: "reference-a-e".into(),
        ports,
        frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_priority_tag_before_a_sub_interface_tag_is_the_named_deviation() {
        use crate::wire::{FrameBuilder, MacAddr, Tci};
        let frame = |tags: &[Tci]| ScenarioFrame {
            interface: "pb".into(),
            bytes: tags
                .iter()
                .fold(
                    FrameBuilder::new(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 2])),
                    |b, t| b.tag(*t),
                )
                .build(),
        };
        let scenario = Scenario {
            name: "prio".into(),
            ports: vec![
                port("pa", &[(1, true)], Some(1)),
                port("pb.30", &[(1, false)], Some(1)),
            ],
            frames: vec![
                frame(&[Tci::new(0, false, 0), Tci::new(2, false, 30)]),
                frame(&[Tci::new(0, false, 0), Tci::new(2, false, 40)]),
            ],
        };
        let ours = scenario.run_pipeline().unwrap();
        assert!(
            ours[0].is_empty(),
            "xbridge: no sub-interface for VID 0, no trunk: no_port"
        );
        let kernel: Emitted = [("pa".to_string(), vec![vec![0u8; 60]])]
            .into_iter()
            .collect();
        assert!(matches!(
            compare(&scenario, 0, &ours[0], &kernel),
            Comparison::Deviation(Deviation {
                rule: "priority-tag-before-sub-interface",
                ..
            })
        ));
        // Without a sub-interface for the inner VID it is a mismatch.
        assert_eq!(
            compare(&scenario, 1, &ours[1], &kernel),
            Comparison::Mismatch
        );
    }

    #[test]
    fn random_ports_always_have_a_member_pvid_or_none() {
        for scenario in random_scenarios(11, 1000) {
            assert!(
                scenario.asymmetric_pvid_ports().is_empty(),
                "{:?}",
                scenario.ports
            );
        }
    }

    #[test]
    fn random_scenarios_replay_from_their_seed_and_are_valid() {
        let a = random_scenarios(7, 250);
        let b = random_scenarios(7, 250);
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|s| s.frames.len()).sum::<usize>(), 250);
        for scenario in &a {
            assert!(scenario.bridge_config().is_ok(), "{scenario:?}");
            assert!(scenario.run_pipeline().is_ok());
            assert!(scenario.ports.iter().all(|p| p.name.len() >= 2));
        }
        assert_ne!(random_scenarios(8, 100), a[..1].to_vec());
    }

    #[test]
    fn the_reference_scenario_runs_through_the_pipeline() {
        let scenario = reference_scenario();
        let out = scenario.run_pipeline().unwrap();
        assert_eq!(out.len(), 11);
        assert_eq!(out[0].keys().collect::<Vec<_>>(), ["pb", "pd", "pe"]);
        assert!(
            out[6].is_empty() && out[7].is_empty(),
            "rows 7 and 8 are dropped"
        );
        assert_eq!(
            scenario.asymmetric_pvid_ports(),
            vec![("pd".to_string(), 30)]
        );
    }

    #[test]
    fn the_kernel_reaching_port_d_with_blue_is_the_known_deviation_only() {
        let scenario = reference_scenario();
        let ours = scenario.run_pipeline().unwrap();
        // Row 4: tagged 30 from E. The kernel also sends it out of D.
        let mut kernel = ours[3].clone();
        kernel.insert("pd".into(), vec![vec![1, 2, 3]]);
        assert!(matches!(
            compare(&scenario, 3, &ours[3], &kernel),
            Comparison::Deviation(_)
        ));
        // The same extra frame on a symmetric port is a mismatch.
        let mut kernel = ours[3].clone();
        kernel.insert("pc".into(), vec![vec![1, 2, 3]]);
        assert_eq!(
            compare(&scenario, 3, &ours[3], &kernel),
            Comparison::Mismatch
        );
        // Missing a frame xbridge sends is a mismatch too.
        let mut kernel = ours[0].clone();
        kernel.remove("pe");
        assert_eq!(
            compare(&scenario, 0, &ours[0], &kernel),
            Comparison::Mismatch
        );
    }
}

/// The result of checking scenarios against the real kernel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub accelerator: String,
    pub vm_seconds: f64,
    pub scenarios: usize,
    pub frames: usize,
    pub agreements: usize,
    /// Known deviations by rule.
    pub deviations: BTreeMap<String, usize>,
    pub mismatches: Vec<Mismatch>,
    /// Scenarios whose learned entries differ at the end.
    pub fdb_mismatches: Vec<FdbMismatch>,
}

/// A scenario whose FDB ended different on the two bridges.
#[derive(Debug, Clone, Serialize)]
pub struct FdbMismatch {
    pub scenario: String,
    pub only_xbridge: Vec<FdbRow>,
    pub only_kernel: Vec<FdbRow>,
}

/// A frame where xbridge and the kernel disagree, with everything needed to
/// replay it.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub scenario: String,
    pub frame: usize,
    pub config: Vec<ScenarioPort>,
    pub sent_on: String,
    pub sent: String,
    pub xbridge: EmittedHex,
    pub kernel: EmittedHex,
}

/// The difference of two sorted FDBs, if they differ.
fn fdb_difference(scenario: &str, ours: &[FdbRow], kernel: &[FdbRow]) -> Option<FdbMismatch> {
    (ours != kernel).then(|| FdbMismatch {
        scenario: scenario.to_string(),
        only_xbridge: ours
            .iter()
            .filter(|r| !kernel.contains(r))
            .cloned()
            .collect(),
        only_kernel: kernel
            .iter()
            .filter(|r| !ours.contains(r))
            .cloned()
            .collect(),
    })
}

/// Compares the kernel's `outcomes` with what `xbridge` emits for each
/// scenario (normally `Scenario::run_pipeline`).
pub fn compare_all(
    scenarios: &[Scenario],
    outcomes: &[Outcome],
    xbridge: impl Fn(&Scenario) -> Vec<Emitted>,
) -> Summary {
    let mut summary = Summary {
        scenarios: scenarios.len(),
        ..Summary::default()
    };
    for (scenario, outcome) in scenarios.iter().zip(outcomes) {
        let ours_fdb = scenario.pipeline_fdb().unwrap_or_default();
        let mut kernel_fdb = outcome.fdb.clone();
        kernel_fdb.sort();
        summary
            .fdb_mismatches
            .extend(fdb_difference(&scenario.name, &ours_fdb, &kernel_fdb));
        let ours = xbridge(scenario);
        for (index, (ours, kernel_hex)) in ours.iter().zip(&outcome.frames).enumerate() {
            summary.frames += 1;
            let kernel = kernel_hex.decode();
            match compare(scenario, index, ours, &kernel) {
                Comparison::Agree => summary.agreements += 1,
                Comparison::Deviation(deviation) => {
                    *summary
                        .deviations
                        .entry(deviation.rule.to_string())
                        .or_default() += 1
                }
                Comparison::Mismatch => summary.mismatches.push(Mismatch {
                    scenario: scenario.name.clone(),
                    frame: index,
                    config: scenario.ports.clone(),
                    sent_on: scenario.frames[index].interface.clone(),
                    sent: hex(&scenario.frames[index].bytes),
                    xbridge: EmittedHex::from(ours),
                    kernel: kernel_hex.clone(),
                }),
            }
        }
    }
    summary
}

/// Runs `scenarios` on the kernel (in the VM) and on xbridge's pipeline,
/// and compares every frame.
pub fn check(
    parts: &crate::vm::VmParts,
    scenarios: &[Scenario],
) -> Result<Summary, crate::vm::VmError> {
    let (outcomes, accelerator, seconds) = crate::vm::run(parts, scenarios)?;
    let mut summary = compare_all(scenarios, &outcomes, |scenario| {
        scenario.run_pipeline().unwrap_or_default()
    });
    summary.accelerator = accelerator.to_string();
    summary.vm_seconds = seconds;
    Ok(summary)
}

/// A small deterministic generator (xorshift64*), so a seed replays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The sub-interface scenario of the seed's rules 6, 9 and 10: a trunk veth
/// `pt` with sub-interface ports `pt.10` (VLAN 10 untagged) and `pt.20`
/// (VLAN 20 untagged, 30 tagged), an access port and a tagging trunk.
pub fn sub_interface_scenario() -> Scenario {
    use crate::wire::{MacAddr, Tci};
    let ports = vec![
        port("pt.10", &[(10, true)], Some(10)),
        port("pt.20", &[(20, true), (30, false)], Some(20)),
        port("px", &[(10, true)], Some(10)),
        port("py", &[(10, false), (20, false), (30, false)], None),
    ];
    let tag = |vid| Tci::new(0, false, vid);
    let mac = |n: u8| MacAddr([2, 0, 0, 0, 1, n]);
    let frames = broadcast_rows(
        "subif",
        vec![
            ("pt", mac(1), vec![tag(10)]), // rule 6 / I3: into VLAN 10 untagged
            ("pt", mac(1), vec![Tci::new(5, false, 20)]), // I3: the sub-interface tag's PCP is not kept
            ("px", mac(2), vec![]),                       // rule 9 / E4: leaves pt tagged 10
            ("py", mac(3), vec![tag(30)]), // rule 10 / E5: leaves pt double-tagged 20+30
            ("py", mac(3), vec![tag(20)]), // E4 on pt.20
            ("pt", mac(1), vec![tag(20), tag(30)]), // I3: the inner tag 30 classifies
            ("pt", mac(1), vec![tag(40)]), // no sub-interface, no trunk: dropped
            ("pt", mac(1), vec![]),        // untagged on pt: no trunk port
        ],
    );
    Scenario {
        name: "sub-interfaces".into(),
        ports,
        frames,
    }
}

/// A random scenario: 2-6 interfaces with trunk and/or sub-interface ports,
/// random VLANs, PVIDs (sometimes none) and egress
/// modes, and `frames` random frames: untagged, priority-tagged, tagged with
/// VIDs including 0 and 4095, double-tagged, 802.1ad, reserved group
/// addresses, multicast and zero sources, learned and unknown unicast,
/// MAC moves.
pub fn random_scenario(rng: &mut Rng, name: &str, frames: usize) -> Scenario {
    use crate::wire::{FrameBuilder, MacAddr, Tci, TPID_8021AD};
    const VIDS: [u16; 5] = [1, 10, 20, 30, 4094];
    let interfaces = 2 + rng.below(5) as usize;
    let mut ports = Vec::new();
    for index in 0..interfaces {
        let interface = format!("p{}", (b'a' + index as u8) as char);
        let trunk = rng.chance(90);
        let sub_interface = !trunk || rng.chance(30);
        let mut names = Vec::new();
        if trunk {
            names.push(interface.clone());
        }
        if sub_interface {
            names.push(format!("{interface}.{}", rng.pick(&VIDS)));
        }
        for name in names {
            let mut vlans: Vec<(u16, bool)> = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let vid = *rng.pick(&VIDS);
                if !vlans.iter().any(|(v, _)| *v == vid) {
                    vlans.push((vid, rng.chance(50)));
                }
            }
            // A PVID outside the member set cannot be expressed on Linux
            // (see `compare`): random ports have a member PVID or none.
            let pvid = match rng.below(10) {
                0 | 1 => None,
                _ => Some(vlans[rng.below(vlans.len() as u64) as usize].0),
            };
            ports.push(ScenarioPort { name, vlans, pvid });
        }
    }
    let interface_names: Vec<String> = {
        let mut names: Vec<String> = ports
            .iter()
            .map(|p| p.name.split('.').next().unwrap_or(&p.name).to_string())
            .collect();
        names.dedup();
        names
    };
    let hosts: Vec<MacAddr> = (1..=6).map(|n| MacAddr([2, 0, 0, 0, 2, n])).collect();
    let mut out = Vec::new();
    for n in 0..frames {
        let src = match rng.below(20) {
            0 => MacAddr([1, 0, 0x5e, 0, 0, 1]),
            1 => MacAddr::ZERO,
            _ => *rng.pick(&hosts),
        };
        let dst = match rng.below(12) {
            0..=2 => MacAddr::BROADCAST,
            3 => MacAddr([1, 0, 0x5e, 0, 0, 7]),
            4 => MacAddr([0x01, 0x80, 0xc2, 0, 0, *rng.pick(&[0u8, 1, 2, 0x0e])]),
            _ => *rng.pick(&hosts),
        };
        let interface = rng.pick(&interface_names).clone();
        // Tags favour the VLANs of the ports on that interface, so most
        // frames get somewhere; the rest probe the edges (0, 4095, strangers).
        let members: Vec<u16> = ports
            .iter()
            .filter(|p| p.name.split('.').next() == Some(interface.as_str()))
            .flat_map(|p| {
                // A sub-interface port is reached through its wire tag.
                let wire = p
                    .name
                    .split_once('.')
                    .and_then(|(_, n)| n.parse::<u16>().ok());
                p.vlans.iter().map(|(vid, _)| *vid).chain(wire)
            })
            .collect();
        let tag_vid = |rng: &mut Rng| {
            if !members.is_empty() && rng.chance(60) {
                *rng.pick(&members)
            } else {
                *rng.pick(&[0u16, 1, 10, 20, 30, 4094, 4095, 99])
            }
        };
        let mut builder = FrameBuilder::new(dst, src);
        match rng.below(10) {
            0..=2 => {}
            3 => builder = builder.tag(Tci::new(rng.below(8) as u8, false, 0)),
            4..=6 => builder = builder.tag(Tci::new(rng.below(8) as u8, false, tag_vid(rng))),
            7 | 8 => {
                builder = builder.tag(Tci::new(0, false, tag_vid(rng))).tag(Tci::new(
                    rng.below(8) as u8,
                    false,
                    tag_vid(rng),
                ))
            }
            _ => builder = builder.tag_with_tpid(TPID_8021AD, Tci::new(0, false, tag_vid(rng))),
        }
        out.push(ScenarioFrame {
            interface,
            bytes: builder
                .payload(format!("xbridge-conformance {name} {n}").as_bytes())
                .build(),
        });
    }
    Scenario {
        name: name.to_string(),
        ports,
        frames: out,
    }
}

/// `count` random frames from `seed`, in scenarios of about 100 frames.
pub fn random_scenarios(seed: u64, count: usize) -> Vec<Scenario> {
    let mut rng = Rng::new(seed);
    let mut scenarios = Vec::new();
    let mut left = count;
    while left > 0 {
        let frames = left.min(100);
        scenarios.push(random_scenario(
            &mut rng,
            &format!("random-{seed}-{}", scenarios.len()),
            frames,
        ));
        left -= frames;
    }
    scenarios
}

/// MACs a scenario's frames come from (its learned entries can only be
/// these; anything else a host said on its own is not the scenario's).
pub fn source_macs(scenario: &Scenario) -> Vec<String> {
    let mut macs: Vec<String> = scenario
        .frames
        .iter()
        .filter_map(|f| wire::EthernetFrame::new_checked(&f.bytes).ok())
        .map(|f| f.src().to_string())
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// Compares the real dataplane's outcomes (long mode) with the kernel's:
/// every frame, and the learned entries of the scenario's own MACs.
pub fn compare_dataplane(
    scenarios: &[Scenario],
    kernel: &[Outcome],
    dataplane: &[Outcome],
) -> Summary {
    let decode = |outcome: &Outcome| -> Vec<Emitted> {
        outcome.frames.iter().map(EmittedHex::decode).collect()
    };
    let mut summary = compare_all(scenarios, kernel, |scenario| {
        dataplane
            .iter()
            .find(|o| o.scenario == scenario.name)
            .map(decode)
            .unwrap_or_default()
    });
    // compare_all checked the pipeline's FDB; the dataplane's replaces it.
    summary.fdb_mismatches.clear();
    for ((scenario, kernel), ours) in scenarios.iter().zip(kernel).zip(dataplane) {
        let macs = source_macs(scenario);
        let keep = |rows: &[FdbRow]| -> Vec<FdbRow> {
            let mut rows: Vec<FdbRow> = rows
                .iter()
                .filter(|r| macs.contains(&r.0))
                .cloned()
                .collect();
            rows.sort();
            rows
        };
        let (theirs, ours) = (keep(&kernel.fdb), keep(&ours.fdb));
        summary
            .fdb_mismatches
            .extend(fdb_difference(&scenario.name, &ours, &theirs));
    }
    summary
}
