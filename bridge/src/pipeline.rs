//! The forwarding decision (spec I1-I7, L1-L3, F1-F3, E1-E5): given the
//! interface a frame arrived on, its bytes and the time, say which ports it
//! leaves through and how each copy's tags change. No I/O, no clock, no
//! allocation: the dataplane and the tests call the same code.

use crate::config::{
    Accept, BridgeConfig, EgressMode, FloodClass, PortConfig, PortId, PortKind, PortSet,
};
use crate::fdb::{Fdb, LearnOutcome, Millis};
use crate::wire::{EthernetFrame, MacAddr, TagEdit, Tci};

/// Why a frame (or, for `EgressFilter`, one copy of it) went nowhere (spec X2).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum DropReason {
    Malformed,
    NoPort,
    FrameType,
    NoPvid,
    BadVid,
    IngressFilter,
    Pause,
    BadSrc,
    StaticConflict,
    LinkLocal,
    Hairpin,
    Isolated,
    EgressFilter,
    /// A flood that had no port left to go to (single-port bridge, flood flags off).
    NoEgress,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::Malformed,
        DropReason::NoPort,
        DropReason::FrameType,
        DropReason::NoPvid,
        DropReason::BadVid,
        DropReason::IngressFilter,
        DropReason::Pause,
        DropReason::BadSrc,
        DropReason::StaticConflict,
        DropReason::LinkLocal,
        DropReason::Hairpin,
        DropReason::Isolated,
        DropReason::EgressFilter,
        DropReason::NoEgress,
    ];

    /// The counter name, as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoPort => "no_port",
            DropReason::FrameType => "frame_type",
            DropReason::NoPvid => "no_pvid",
            DropReason::BadVid => "bad_vid",
            DropReason::IngressFilter => "ingress_filter",
            DropReason::Pause => "pause",
            DropReason::BadSrc => "bad_src",
            DropReason::StaticConflict => "static_conflict",
            DropReason::LinkLocal => "link_local",
            DropReason::Hairpin => "hairpin",
            DropReason::Isolated => "isolated",
            DropReason::EgressFilter => "egress_filter",
            DropReason::NoEgress => "no_egress",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How the destination was resolved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// Known unicast (F1).
    Unicast,
    /// Unknown unicast, broadcast or multicast (F2).
    Flood,
}

/// A frame admitted to the bridge and where it goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Forward {
    pub ingress: PortId,
    /// The VLAN it was classified to (0 without VLAN filtering).
    pub vid: u16,
    /// PCP/DEI to carry onto tagged egress (E3); zero for untagged ingress.
    pub priority: Tci,
    /// Outer 802.1Q tags the ingress consumed (sub-interface, classifying tag).
    pub consumed_tags: u8,
    pub egress: PortSet,
    pub delivery: Delivery,
}

/// The bridge's decision for one received frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Forward(Forward),
    /// Dropped; counted on `port`, the ingress port (`None`: no port owns
    /// the frame). Copies withheld from egress ports are in
    /// `Decision::egress_filtered`.
    Drop {
        port: Option<PortId>,
        reason: DropReason,
    },
}

/// The decision plus what the counters need to know.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    /// The port that owns the frame, if one does (rx counters go there).
    pub ingress: Option<PortId>,
    pub verdict: Verdict,
    /// Ports that did not get a copy because of egress filtering (E1).
    pub egress_filtered: PortSet,
    pub learn: Option<LearnOutcome>,
    /// The VLAN the frame was classified to (0: not classified, or no VLAN
    /// filtering); the VLAN `learn` happened in.
    pub vid: u16,
}

impl Decision {
    fn drop(port: Option<PortId>, reason: DropReason) -> Decision {
        Decision {
            ingress: port,
            verdict: Verdict::Drop { port, reason },
            egress_filtered: PortSet::EMPTY,
            learn: None,
            vid: 0,
        }
    }
}

/// The sub-interface ports and trunk port of one interface.
#[derive(Clone, Debug)]
struct InterfacePorts {
    name: String,
    trunk: Option<PortId>,
    /// (wire VID, port), few per interface.
    sub_interfaces: Vec<(u16, PortId)>,
}

/// Index of an interface in a `Pipeline` (the dataplane's socket owner).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct InterfaceId(pub u16);

/// A bridge configuration compiled for fast decisions.
#[derive(Clone, Debug)]
pub struct Pipeline {
    config: BridgeConfig,
    interfaces: Vec<InterfacePorts>,
}

impl Pipeline {
    pub fn new(config: BridgeConfig) -> Pipeline {
        let mut interfaces: Vec<InterfacePorts> = Vec::new();
        for (index, port) in config.ports.iter().enumerate() {
            let id = PortId(index as u16);
            let slot = match interfaces.iter().position(|i| i.name == port.interface) {
                Some(slot) => slot,
                None => {
                    interfaces.push(InterfacePorts {
                        name: port.interface.clone(),
                        trunk: None,
                        sub_interfaces: Vec::new(),
                    });
                    interfaces.len() - 1
                }
            };
            match port.kind {
                PortKind::Trunk => interfaces[slot].trunk = Some(id),
                PortKind::SubInterface { wire_vid } => {
                    interfaces[slot].sub_interfaces.push((wire_vid.get(), id))
                }
            }
        }
        Pipeline { config, interfaces }
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// The interfaces the bridge has sockets on, in `InterfaceId` order.
    pub fn interface_names(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().map(|i| i.name.as_str())
    }

    pub fn interface_id(&self, name: &str) -> Option<InterfaceId> {
        self.interfaces
            .iter()
            .position(|i| i.name == name)
            .map(|index| InterfaceId(index as u16))
    }

    /// The interface a port's frames leave through.
    pub fn interface_of(&self, port: PortId) -> InterfaceId {
        let name = &self.config.port(port).interface;
        self.interface_id(name)
            .expect("every port's interface is indexed")
    }

    fn port(&self, id: PortId) -> &PortConfig {
        &self.config.ports[id.index()]
    }

    /// Loads static entries into `fdb` (all or nothing).
    pub fn install_static_entries(&self, fdb: &Fdb) -> Result<(), crate::fdb::FdbError> {
        crate::reconfig::install_statics(fdb, &self.config)
    }

    /// Decides the fate of `bytes` received on `interface` at `now`, learning
    /// its source into `fdb`.
    pub fn decide(&self, interface: InterfaceId, bytes: &[u8], fdb: &Fdb, now: Millis) -> Decision {
        let ports = &self.interfaces[usize::from(interface.0)];
        // spec: I1
        let Ok(frame) = EthernetFrame::new_checked(bytes) else {
            return Decision::drop(ports.trunk, DropReason::Malformed);
        };
        // Which port owns the frame: a sub-interface claims its outer tag.
        let outer = frame.outer_tag();
        let sub_interface = outer.and_then(|tci| {
            ports
                .sub_interfaces
                .iter()
                .find(|(wire_vid, _)| *wire_vid == tci.vid())
                .map(|(_, port)| *port)
        });
        let (ingress, mut consumed) = match (sub_interface, ports.trunk) {
            (Some(port), _) => (port, 1u8),
            (None, Some(port)) => (port, 0u8),
            (None, None) => return Decision::drop(None, DropReason::NoPort),
        };
        let port = self.port(ingress);
        if consumed == 1 && bytes.len() < 14 + 4 + 2 {
            // spec: I1 (the sub-interface's tag leaves no EtherType behind)
            return Decision::drop(Some(ingress), DropReason::Malformed);
        }

        let (vid, priority) = if self.config.vlan_filtering {
            match self.classify(&frame, port, &mut consumed) {
                Ok(classified) => classified,
                Err(reason) => return Decision::drop(Some(ingress), reason),
            }
        } else {
            // spec: I7
            (0, Tci(0))
        };

        // spec: I6 (pause frames are dropped before learning)
        let dst = frame.dst();
        let reserved = dst.reserved_group_index();
        if reserved == Some(0x01) {
            return Decision::drop(Some(ingress), DropReason::Pause);
        }
        // spec: L1
        let src = frame.src();
        if src.is_multicast() || src.is_zero() {
            return Decision::drop(Some(ingress), DropReason::BadSrc);
        }
        let learn = port
            .flags
            .learning
            .then(|| fdb.learn(src, vid, ingress, now, port.flags.fdb_max_learned));
        let with_learn = |mut decision: Decision| {
            decision.learn = learn;
            decision.vid = vid;
            decision
        };
        // spec: L2
        if let Some(LearnOutcome::StaticConflict { .. }) = learn {
            return with_learn(Decision::drop(Some(ingress), DropReason::StaticConflict));
        }
        // spec: I6 (02..0F are learned from, never forwarded)
        if matches!(reserved, Some(index) if index >= 0x02) {
            return with_learn(Decision::drop(Some(ingress), DropReason::LinkLocal));
        }

        let forward = Forward {
            ingress,
            vid,
            priority,
            consumed_tags: consumed,
            egress: PortSet::EMPTY,
            delivery: Delivery::Flood,
        };
        with_learn(self.resolve_egress(forward, dst, port, fdb))
    }

    /// spec: I2-I5. Returns the VID and the priority bits to keep.
    fn classify(
        &self,
        frame: &EthernetFrame<'_>,
        port: &PortConfig,
        consumed: &mut u8,
    ) -> Result<(u16, Tci), DropReason> {
        // What is left after a sub-interface removed its tag (I3) is
        // classified like a frame on a trunk.
        let tag = frame.tag_at(usize::from(*consumed));
        let wire_vid = tag.map(|tci| tci.vid());
        // spec: I5
        match (port.accept, wire_vid) {
            (Accept::Untagged, Some(vid)) if vid != 0 => return Err(DropReason::FrameType),
            (Accept::Tagged, None | Some(0)) => return Err(DropReason::FrameType),
            _ => {}
        }
        match tag {
            // spec: I2 (VID 4095 is reserved)
            Some(tci) if tci.vid() == 0x0fff => Err(DropReason::BadVid),
            // spec: I2, I4 (a VID taken from the tag must be a member)
            Some(tci) if tci.vid() != 0 => {
                if !port.vlans.contains(tci.vid()) {
                    return Err(DropReason::IngressFilter);
                }
                *consumed += 1;
                Ok((tci.vid(), tci.with_vid(0)))
            }
            // spec: I2 (priority-tagged: PVID, priority kept), I4 (PVID admitted
            // even when not a member: the article's port D)
            Some(tci) => {
                let pvid = port.pvid.ok_or(DropReason::NoPvid)?;
                *consumed += 1;
                Ok((pvid.get(), tci.with_vid(0)))
            }
            None => {
                let pvid = port.pvid.ok_or(DropReason::NoPvid)?;
                Ok((pvid.get(), Tci(0)))
            }
        }
    }

    /// spec: F1-F3, E1.
    fn resolve_egress(
        &self,
        mut forward: Forward,
        dst: MacAddr,
        ingress_port: &PortConfig,
        fdb: &Fdb,
    ) -> Decision {
        let ingress = forward.ingress;
        let vid = forward.vid;
        let filtering = self.config.vlan_filtering;
        let passes_egress_filter = |q: &PortConfig| !filtering || q.vlans.contains(vid);
        let mut filtered = PortSet::EMPTY;
        let decision = |verdict, filtered| Decision {
            ingress: Some(ingress),
            verdict,
            egress_filtered: filtered,
            learn: None,
            vid,
        };

        if !dst.is_multicast() {
            if let Some(target) = fdb.lookup(dst, vid) {
                // spec: F1
                if target == ingress {
                    return Decision::drop(Some(ingress), DropReason::Hairpin);
                }
                let target_port = self.port(target);
                // spec: F3
                if ingress_port.flags.isolated && target_port.flags.isolated {
                    return Decision::drop(Some(ingress), DropReason::Isolated);
                }
                // spec: E1
                if !passes_egress_filter(target_port) {
                    return decision(
                        Verdict::Drop {
                            port: Some(ingress),
                            reason: DropReason::EgressFilter,
                        },
                        PortSet::single(target),
                    );
                }
                forward.egress = PortSet::single(target);
                forward.delivery = Delivery::Unicast;
                return decision(Verdict::Forward(forward), PortSet::EMPTY);
            }
        }

        // spec: F2 (STP BPDUs, 01:80:c2:00:00:00, flood like broadcasts: I6)
        let class = FloodClass::of(dst);
        for (index, q) in self.config.ports.iter().enumerate() {
            let id = PortId(index as u16);
            if id == ingress {
                continue;
            }
            // spec: F3
            if !q.flags.floods(class) || (ingress_port.flags.isolated && q.flags.isolated) {
                continue;
            }
            // spec: E1
            if !passes_egress_filter(q) {
                filtered.insert(id);
                continue;
            }
            forward.egress.insert(id);
        }
        if forward.egress.is_empty() {
            let reason = if filtered.is_empty() {
                DropReason::NoEgress
            } else {
                DropReason::EgressFilter
            };
            return decision(
                Verdict::Drop {
                    port: Some(ingress),
                    reason,
                },
                filtered,
            );
        }
        decision(Verdict::Forward(forward), filtered)
    }

    /// How the copy of `forward` that leaves through `egress` is edited
    /// (spec E2-E5, X1).
    pub fn egress_edit(&self, forward: &Forward, egress: PortId) -> TagEdit {
        let port = self.port(egress);
        let mut edit = TagEdit {
            strip: forward.consumed_tags,
            ..TagEdit::NONE
        };
        let bridge_tag = if self.config.vlan_filtering {
            match port.vlans.mode(forward.vid) {
                // spec: E3, E5
                Some(EgressMode::Tagged) => Some(forward.priority.with_vid(forward.vid)),
                // spec: E2, E4
                _ => None,
            }
        } else {
            None
        };
        let sub_interface_tag = match port.kind {
            // spec: E4, E5 (the sub-interface tags outside whatever the bridge left)
            PortKind::SubInterface { wire_vid } => Some(Tci::new(0, false, wire_vid.get())),
            PortKind::Trunk => None,
        };
        let mut pushes = sub_interface_tag.into_iter().chain(bridge_tag);
        edit.push = [pushes.next(), pushes.next()];
        edit
    }
}
