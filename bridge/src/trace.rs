//! `xbridge trace`: what the bridge would do with one frame, explained item
//! by item of the spec, without sending anything. It runs the real pipeline
//! against a scratch copy of the FDB (so nothing is learned for real) and
//! reads the reasons back from the decision; the fast path carries no
//! tracing code at all.

use serde::{Deserialize, Serialize};

use crate::config::{Accept, EgressMode, FloodClass, PortId, PortKind};
use crate::fdb::{Fdb, LearnOutcome, Millis};
use crate::pipeline::{Decision, DropReason, Pipeline, Verdict};
use crate::wire::{self, EthernetFrame, FrameBuilder, MacAddr, TagEdit, Tci};

/// One applied spec item and what it did to this frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub item: String,
    pub says: String,
}

/// One 802.1Q tag as shown to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagView {
    pub vid: u16,
    pub pcp: u8,
    pub dei: bool,
}

/// One copy that would leave the bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    pub port: String,
    pub interface: String,
    /// The 802.1Q tags on the wire of `interface`, outermost first.
    pub tags: Vec<TagView>,
    /// The frame as it would leave, in hex.
    pub frame: String,
}

/// The whole explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub port: String,
    pub interface: String,
    /// The frame as it arrives on `interface`, in hex.
    pub frame: String,
    pub steps: Vec<Step>,
    /// `forward` or `drop`.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
    /// The VLAN the frame was classified to (0 without VLAN filtering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub egress: Vec<Egress>,
}

/// Why a frame could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("no port {0}")]
    UnknownPort(String),
    #[error("{0}")]
    BadFrame(String),
}

/// A frame described by fields on the command line:
/// `src MAC dst MAC [vlan V [pcp P] [dei]]... [proto HEX]`, or `hex BYTES`.
pub fn frame_from_words(words: &[String]) -> Result<Vec<u8>, TraceError> {
    let bad = |text: String| TraceError::BadFrame(text);
    let mut rest = words.iter().map(String::as_str).peekable();
    let (mut src, mut dst) = (None, None);
    let mut tags: Vec<Tci> = Vec::new();
    let mut ethertype = 0x88b5u16;
    while let Some(word) = rest.next() {
        let mut value = |what: &str| {
            rest.next()
                .ok_or_else(|| bad(format!("`{word}` needs {what}")))
        };
        match word {
            "hex" => {
                let text = value("the frame's bytes in hex")?;
                let cleaned: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
                let bytes = wire::unhex(&cleaned)
                    .ok_or_else(|| bad(format!("`{text}` is not hex bytes")))?;
                if words.len() > 2 {
                    return Err(bad("`hex` gives the whole frame; no other fields".into()));
                }
                return Ok(bytes);
            }
            "src" | "dst" => {
                let text = value("a MAC address")?;
                let mac: MacAddr = text.parse().map_err(|e| bad(format!("{e}")))?;
                if word == "src" {
                    src = Some(mac);
                } else {
                    dst = Some(mac);
                }
            }
            "vlan" | "vid" => {
                let text = value("a VLAN ID (0 for a priority tag)")?;
                let vid: u16 = text
                    .parse()
                    .ok()
                    .filter(|v| *v <= 4095)
                    .ok_or_else(|| bad(format!("`{text}` is not a VLAN ID (0..=4095)")))?;
                tags.push(Tci::new(0, false, vid));
            }
            "pcp" => {
                let text = value("a priority 0..=7")?;
                let pcp: u8 = text
                    .parse()
                    .ok()
                    .filter(|p| *p <= 7)
                    .ok_or_else(|| bad(format!("`{text}` is not a priority (0..=7)")))?;
                let last = tags
                    .last_mut()
                    .ok_or_else(|| bad("`pcp` follows a `vlan`".into()))?;
                *last = Tci::new(pcp, last.dei(), last.vid());
            }
            "dei" => {
                let last = tags
                    .last_mut()
                    .ok_or_else(|| bad("`dei` follows a `vlan`".into()))?;
                *last = Tci::new(last.pcp(), true, last.vid());
            }
            "proto" | "type" => {
                let text = value("an EtherType in hex, e.g. 0800")?;
                ethertype = u16::from_str_radix(text.trim_start_matches("0x"), 16)
                    .map_err(|_| bad(format!("`{text}` is not an EtherType")))?;
            }
            other => {
                return Err(bad(format!(
                    "unexpected `{other}` (src, dst, vlan, pcp, dei, proto, or hex)"
                )))
            }
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(bad(
            "a frame needs `src MAC` and `dst MAC` (or `hex BYTES`)".into(),
        ));
    };
    Ok(tags
        .iter()
        .fold(FrameBuilder::new(dst, src), |b, t| b.tag(*t))
        .ethertype(ethertype)
        .build())
}

/// The tags at the start of `bytes`, outermost first.
pub fn tags_of(bytes: &[u8]) -> Vec<TagView> {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        return Vec::new();
    };
    (0..wire::MAX_PUSHED_TAGS + 2)
        .map_while(|depth| frame.tag_at(depth))
        .map(|tci| TagView {
            vid: tci.vid(),
            pcp: tci.pcp(),
            dei: tci.dei(),
        })
        .collect()
}

/// Traces `frame` entering `port` (for a sub-interface port `IF.N`, the
/// frame as the port sees it: N is put outside it on `IF`'s wire) at `now`,
/// as the bridge with `fdb` would handle it; `fdb` is never written.
pub fn trace(
    pipeline: &Pipeline,
    fdb: &Fdb,
    port: &str,
    frame: &[u8],
    now: Millis,
) -> Result<Trace, TraceError> {
    let config = pipeline.config();
    let port_id = config
        .port_id(port)
        .ok_or_else(|| TraceError::UnknownPort(port.to_string()))?;
    let entering = config.port(port_id);
    let wire_frame = match entering.kind {
        PortKind::Trunk => frame.to_vec(),
        PortKind::SubInterface { wire_vid } => {
            let edit = TagEdit {
                strip: 0,
                push: [Some(Tci::new(0, false, wire_vid.get())), None],
            };
            let mut out = vec![0; frame.len() + wire::VLAN_TAG_LEN];
            let len = wire::copy_edited(frame, &edit, &mut out)
                .map_err(|_| TraceError::BadFrame("shorter than an Ethernet header".into()))?;
            out.truncate(len);
            out
        }
    };
    let interface = pipeline.interface_of(port_id);
    let scratch = fdb.scratch_copy();
    let decision = pipeline.decide(interface, &wire_frame, &scratch, now);
    let mut steps = Vec::new();
    explain(pipeline, &scratch, &wire_frame, &decision, &mut steps);

    let mut trace = Trace {
        port: port.to_string(),
        interface: entering.interface.clone(),
        frame: wire::hex(&wire_frame),
        steps,
        verdict: "drop".into(),
        drop_reason: None,
        vlan: None,
        egress: Vec::new(),
    };
    match decision.verdict {
        Verdict::Drop { reason, .. } => trace.drop_reason = Some(reason.name().to_string()),
        Verdict::Forward(forward) => {
            trace.verdict = "forward".into();
            trace.vlan = Some(forward.vid);
            for egress in forward.egress.iter() {
                let edit = pipeline.egress_edit(&forward, egress);
                let mut out = vec![0; wire_frame.len() + 2 * wire::VLAN_TAG_LEN];
                let len = wire::copy_edited(&wire_frame, &edit, &mut out)
                    .expect("the pipeline only edits frames it parsed");
                out.truncate(len);
                let leaving = config.port(egress);
                trace.steps.push(egress_step(pipeline, forward.vid, egress));
                trace.egress.push(Egress {
                    port: leaving.name.clone(),
                    interface: leaving.interface.clone(),
                    tags: tags_of(&out),
                    frame: wire::hex(&out),
                });
            }
        }
    }
    if trace.vlan.is_none() && decision.vid != 0 {
        trace.vlan = Some(decision.vid);
    }
    Ok(trace)
}

fn step(item: &str, says: String) -> Step {
    Step {
        item: item.to_string(),
        says,
    }
}

fn names(pipeline: &Pipeline, ports: impl Iterator<Item = PortId>) -> String {
    let list: Vec<&str> = ports
        .map(|p| pipeline.config().port(p).name.as_str())
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Reads the decision back as spec items, in the order the pipeline applies them.
fn explain(
    pipeline: &Pipeline,
    fdb: &Fdb,
    bytes: &[u8],
    decision: &Decision,
    steps: &mut Vec<Step>,
) {
    let config = pipeline.config();
    let reason = match decision.verdict {
        Verdict::Drop { reason, .. } => Some(reason),
        Verdict::Forward(_) => None,
    };
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        steps.push(step(
            "I1",
            format!(
                "{} bytes: too short for its header: dropped (malformed)",
                bytes.len()
            ),
        ));
        return;
    };
    let Some(ingress) = decision.ingress else {
        steps.push(step(
            "ports",
            "no sub-interface claims the outer tag and the interface has no trunk port: dropped (no_port)".into(),
        ));
        return;
    };
    let port = config.port(ingress);
    let mut depth = 0;
    match port.kind {
        PortKind::SubInterface { wire_vid } => {
            depth = 1;
            steps.push(step(
                "I3",
                format!(
                    "the outer tag {wire_vid} belongs to sub-interface port {}, which removes it",
                    port.name
                ),
            ));
        }
        PortKind::Trunk => steps.push(step("I1", format!("arrives on trunk port {}", port.name))),
    }
    if reason == Some(DropReason::Malformed) {
        steps.push(step(
            "I1",
            "nothing is left after the sub-interface's tag: dropped (malformed)".into(),
        ));
        return;
    }
    if !config.vlan_filtering {
        steps.push(step(
            "I7",
            "vlan_filtering off: one shared VLAN, tags left as they are".into(),
        ));
    } else {
        let tag = frame.tag_at(depth);
        let accept = match port.accept {
            Accept::All => None,
            Accept::Untagged => Some("untagged"),
            Accept::Tagged => Some("tagged"),
        };
        if reason == Some(DropReason::FrameType) {
            steps.push(step(
                "I5",
                format!(
                    "port {} accepts only {} frames: dropped (frame_type)",
                    port.name,
                    accept.unwrap_or("all")
                ),
            ));
            return;
        }
        if let Some(accept) = accept {
            steps.push(step(
                "I5",
                format!("accept {accept}: this frame is admitted"),
            ));
        }
        match tag {
            Some(tci) if tci.vid() == 0x0fff => {
                steps.push(step("I2", "VID 4095 is reserved: dropped (bad_vid)".into()));
                return;
            }
            Some(tci) if tci.vid() != 0 => {
                steps.push(step(
                    "I2",
                    format!("tagged {}: classified to VLAN {}", tci.vid(), tci.vid()),
                ));
                if reason == Some(DropReason::IngressFilter) {
                    steps.push(step(
                        "I4",
                        format!(
                            "VLAN {} is not a member of port {}: dropped (ingress_filter)",
                            tci.vid(),
                            port.name
                        ),
                    ));
                    return;
                }
                steps.push(step(
                    "I4",
                    format!(
                        "VLAN {} is a member of port {}: admitted",
                        tci.vid(),
                        port.name
                    ),
                ));
            }
            _ => {
                let how = if tag.is_some() {
                    "priority-tagged (VID 0)"
                } else {
                    "untagged"
                };
                let Some(pvid) = port.pvid else {
                    steps.push(step(
                        "I2",
                        format!(
                            "{how} and port {} has no PVID: dropped (no_pvid)",
                            port.name
                        ),
                    ));
                    return;
                };
                steps.push(step(
                    "I2",
                    format!("{how}: classified to the PVID, VLAN {pvid}"),
                ));
                if !port.vlans.contains(pvid.get()) {
                    steps.push(step(
                        "I4",
                        format!(
                            "the PVID {pvid} is admitted although port {} is not a member of it",
                            port.name
                        ),
                    ));
                }
            }
        }
    }
    let dst = frame.dst();
    let src = frame.src();
    match reason {
        Some(DropReason::Pause) => {
            steps.push(step(
                "I6",
                format!("{dst} is a pause frame: dropped (pause)"),
            ));
            return;
        }
        Some(DropReason::BadSrc) => {
            steps.push(step(
                "L1",
                format!("source {src} is multicast or zero: dropped (bad_src)"),
            ));
            return;
        }
        _ => {}
    }
    let vid = decision.vid;
    steps.push(step(
        match decision.learn {
            Some(LearnOutcome::Moved { .. } | LearnOutcome::StaticConflict { .. }) => "L2",
            Some(LearnOutcome::LimitReached) => "L3",
            _ => "L1",
        },
        match decision.learn {
            None => format!("learning is off on port {}: nothing learned", port.name),
            Some(LearnOutcome::Learned) => {
                format!("would learn {src} in VLAN {vid} on port {}", port.name)
            }
            Some(LearnOutcome::Known) => format!(
                "{src} in VLAN {vid} is already known on port {}: refreshed",
                port.name
            ),
            Some(LearnOutcome::Moved { from }) => format!(
                "{src} in VLAN {vid} would move from port {} to {}",
                config.port(from).name,
                port.name
            ),
            Some(LearnOutcome::StaticConflict { owner }) => format!(
                "{src} is static on port {}: dropped (static_conflict)",
                config.port(owner).name
            ),
            Some(LearnOutcome::LimitReached) => {
                "an FDB limit is reached: nothing learned, forwarding goes on".into()
            }
            Some(LearnOutcome::Busy) => "another worker is updating this entry".into(),
        },
    ));
    match reason {
        Some(DropReason::StaticConflict) => return,
        Some(DropReason::LinkLocal) => {
            steps.push(step(
                "I6",
                format!("{dst} is a link-local reserved address: never forwarded (link_local)"),
            ));
            return;
        }
        _ => {}
    }
    if dst.reserved_group_index() == Some(0) {
        steps.push(step(
            "I6",
            format!("{dst} (STP) is flooded like a broadcast: xbridge runs no STP"),
        ));
    }
    let known = (!dst.is_multicast())
        .then(|| fdb.lookup(dst, vid))
        .flatten();
    match known {
        Some(target) => {
            let target_port = config.port(target);
            if reason == Some(DropReason::Hairpin) {
                steps.push(step(
                    "F1",
                    format!(
                        "{dst} in VLAN {vid} is known on the ingress port itself: dropped (hairpin)"
                    ),
                ));
                return;
            }
            steps.push(step(
                "F1",
                format!("{dst} in VLAN {vid} is known on port {}", target_port.name),
            ));
            if reason == Some(DropReason::Isolated) {
                steps.push(step(
                    "F3",
                    format!(
                        "ports {} and {} are both isolated: dropped (isolated)",
                        port.name, target_port.name
                    ),
                ));
                return;
            }
        }
        None => {
            let class = if dst.is_broadcast() {
                "broadcast"
            } else if dst.is_multicast() {
                "multicast"
            } else {
                "unknown unicast"
            };
            let flood_class = FloodClass::of(dst);
            let skipped = config.ports.iter().enumerate().filter(|(index, q)| {
                PortId(*index as u16) != ingress && !q.flags.floods(flood_class)
            });
            let skipped: Vec<&str> = skipped.map(|(_, q)| q.name.as_str()).collect();
            let mut says = format!("{dst} is {class} in VLAN {vid}: flooded");
            if !skipped.is_empty() {
                says += &format!(" (not to {}: their flood flag is off)", skipped.join(", "));
            }
            steps.push(step("F2", says));
            if port.flags.isolated {
                let isolated: Vec<PortId> = (0..config.ports.len())
                    .map(|i| PortId(i as u16))
                    .filter(|p| *p != ingress && config.port(*p).flags.isolated)
                    .collect();
                if !isolated.is_empty() {
                    steps.push(step(
                        "F3",
                        format!(
                            "port {} is isolated: not to isolated {}",
                            port.name,
                            names(pipeline, isolated.into_iter())
                        ),
                    ));
                }
            }
        }
    }
    if !decision.egress_filtered.is_empty() {
        steps.push(step(
            "E1",
            format!(
                "not members of VLAN {vid}, so withheld from: {}",
                names(pipeline, decision.egress_filtered.iter())
            ),
        ));
    }
    match reason {
        Some(DropReason::EgressFilter) => steps.push(step(
            "E1",
            "no port may carry it: dropped (egress_filter)".into(),
        )),
        Some(DropReason::NoEgress) => steps.push(step(
            "F2",
            "no port is left to flood to: dropped (no_egress)".into(),
        )),
        _ => {}
    }
}

fn egress_step(pipeline: &Pipeline, vid: u16, egress: PortId) -> Step {
    let config = pipeline.config();
    let port = config.port(egress);
    if !config.vlan_filtering {
        let says = match port.kind {
            PortKind::Trunk => format!("leaves {} as it came", port.name),
            PortKind::SubInterface { wire_vid } => {
                format!(
                    "leaves {} with the sub-interface's tag {wire_vid} added",
                    port.name
                )
            }
        };
        return step("X1", says);
    }
    let mode = port.vlans.mode(vid).unwrap_or(EgressMode::Untagged);
    match (port.kind, mode) {
        (PortKind::Trunk, EgressMode::Untagged) => step(
            "E2",
            format!(
                "leaves {} untagged (VLAN {vid} is untagged there)",
                port.name
            ),
        ),
        (PortKind::Trunk, EgressMode::Tagged) => step(
            "E3",
            format!("leaves {} tagged {vid}, priority kept", port.name),
        ),
        (PortKind::SubInterface { wire_vid }, EgressMode::Untagged) => step(
            "E4",
            format!(
                "leaves {} untagged from the bridge, then tagged {wire_vid} by the sub-interface",
                port.name
            ),
        ),
        (PortKind::SubInterface { wire_vid }, EgressMode::Tagged) => step(
            "E5",
            format!(
                "leaves {} tagged {vid} by the bridge inside the sub-interface's tag {wire_vid}",
                port.name
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BridgeConfig, PortConfig};
    use std::time::Duration;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn frames_from_fields_and_hex_agree() {
        let fields = frame_from_words(&words(
            "src 02:00:00:00:00:0a dst ff:ff:ff:ff:ff:ff vlan 10 pcp 3 vlan 20",
        ))
        .unwrap();
        assert_eq!(
            tags_of(&fields),
            vec![
                TagView {
                    vid: 10,
                    pcp: 3,
                    dei: false
                },
                TagView {
                    vid: 20,
                    pcp: 0,
                    dei: false
                }
            ]
        );
        let again = frame_from_words(&words(&format!("hex {}", wire::hex(&fields)))).unwrap();
        assert_eq!(again, fields);
        assert!(frame_from_words(&words("src 02:00:00:00:00:0a")).is_err());
        assert!(frame_from_words(&words("pcp 3")).is_err());
        assert!(frame_from_words(&words("hex 0g")).is_err());
        assert!(frame_from_words(&words("src x dst y")).is_err());
    }

    // spec: E5, I3
    #[test]
    fn a_sub_interface_frame_is_traced_with_its_wire_tag() {
        let config = BridgeConfig {
            name: "br".into(),
            vlan_filtering: true,
            ageing_time: Duration::ZERO,
            fdb_max_learned: 100,
            ports: vec![
                PortConfig::named("t.10")
                    .unwrap()
                    .with_vlan(20, EgressMode::Tagged)
                    .with_vlan(30, EgressMode::Untagged)
                    .with_pvid(30),
                PortConfig::trunk("u")
                    .with_vlan(20, EgressMode::Untagged)
                    .with_vlan(30, EgressMode::Tagged)
                    .with_pvid(20),
            ],
            static_fdb: vec![],
        }
        .validate()
        .unwrap();
        let pipeline = Pipeline::new(config);
        let fdb = Fdb::new(100);
        let frame =
            frame_from_words(&words("src 02:00:00:00:00:0b dst ff:ff:ff:ff:ff:ff")).unwrap();
        let traced = trace(&pipeline, &fdb, "u", &frame, Millis(0)).unwrap();
        assert_eq!(traced.verdict, "forward");
        assert_eq!(traced.vlan, Some(20));
        assert_eq!(traced.egress.len(), 1);
        let tags: Vec<u16> = traced.egress[0].tags.iter().map(|t| t.vid).collect();
        assert_eq!(tags, vec![10, 20]);
        assert!(traced.steps.iter().any(|s| s.item == "E5"));
        assert!(
            fdb.entries().is_empty(),
            "trace learns only into its scratch FDB"
        );

        let back = trace(&pipeline, &fdb, "t.10", &frame, Millis(0)).unwrap();
        assert!(back.steps.iter().any(|s| s.item == "I3"));
        assert!(back.frame.starts_with("ffffffffffff02000000000b8100000a"));
        assert_eq!(back.vlan, Some(30));
        assert_eq!(
            back.egress[0].tags,
            vec![TagView {
                vid: 30,
                pcp: 0,
                dei: false
            }]
        );
        assert!(matches!(
            trace(&pipeline, &fdb, "nope", &frame, Millis(0)),
            Err(TraceError::UnknownPort(_))
        ));
    }
}
