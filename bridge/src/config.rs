//! Validated bridge configuration: VIDs, ports, per-port VLAN membership and
//! flags. Everything here has passed its checks; the pipeline trusts it.

use std::fmt;
use std::time::Duration;

use crate::wire::MacAddr;

/// The most ports one bridge can have (a port set is a 64-bit mask).
pub const MAX_PORTS: usize = 64;

/// A VLAN ID that may name a VLAN: 1..=4094.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Vid(u16);

/// A VID outside 1..=4094.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VLAN ID {0} is outside 1..=4094")]
pub struct BadVid(pub i64);

impl Vid {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;

    pub fn new(value: i64) -> Result<Vid, BadVid> {
        if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&value) {
            Ok(Vid(value as u16))
        } else {
            Err(BadVid(value))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Index of a port in its bridge (its position in `BridgeConfig::ports`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PortId(pub u16);

impl PortId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A set of ports, one bit each.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct PortSet(pub u64);

impl PortSet {
    pub const EMPTY: PortSet = PortSet(0);

    pub fn single(port: PortId) -> PortSet {
        PortSet(1 << port.0)
    }

    pub fn insert(&mut self, port: PortId) {
        self.0 |= 1 << port.0;
    }

    pub fn contains(self, port: PortId) -> bool {
        self.0 & (1 << port.0) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(self) -> impl Iterator<Item = PortId> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let bit = rest.trailing_zeros();
            rest &= rest - 1;
            Some(PortId(bit as u16))
        })
    }
}

/// How frames of a VLAN leave a port (spec E2-E5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressMode {
    Untagged,
    Tagged,
}

/// Which frames a port admits by their wire tag (spec I5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accept {
    #[default]
    All,
    Untagged,
    Tagged,
}

/// A port's VLAN member set with the egress mode of each member, as bitmaps
/// so a lookup is one load.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet {
    member: [u64; 64],
    untagged: [u64; 64],
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet {
            member: [0; 64],
            untagged: [0; 64],
        }
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl VlanSet {
    pub fn insert(&mut self, vid: Vid, mode: EgressMode) {
        let (word, bit) = (usize::from(vid.0 / 64), vid.0 % 64);
        self.member[word] |= 1 << bit;
        match mode {
            EgressMode::Untagged => self.untagged[word] |= 1 << bit,
            EgressMode::Tagged => self.untagged[word] &= !(1 << bit),
        }
    }

    pub fn remove(&mut self, vid: Vid) {
        let (word, bit) = (usize::from(vid.0 / 64), vid.0 % 64);
        self.member[word] &= !(1 << bit);
        self.untagged[word] &= !(1 << bit);
    }

    /// The egress mode of `vid` (a raw 12-bit VID), if it is a member.
    pub fn mode(&self, vid: u16) -> Option<EgressMode> {
        let (word, bit) = (usize::from((vid & 0x0fff) / 64), vid % 64);
        if self.member[word] & (1 << bit) == 0 {
            None
        } else if self.untagged[word] & (1 << bit) != 0 {
            Some(EgressMode::Untagged)
        } else {
            Some(EgressMode::Tagged)
        }
    }

    pub fn contains(&self, vid: u16) -> bool {
        self.mode(vid).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Vid, EgressMode)> + '_ {
        (Vid::MIN..=Vid::MAX).filter_map(|vid| self.mode(vid).map(|mode| (Vid(vid), mode)))
    }

    pub fn is_empty(&self) -> bool {
        self.member.iter().all(|word| *word == 0)
    }
}

/// What a port is on its interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortKind {
    /// The whole interface; tags are on the wire.
    Trunk,
    /// `IF.N`: terminates VLAN N of the interface in the bridge (spec I3, E4, E5).
    SubInterface { wire_vid: Vid },
}

/// Per-port switches (spec "flags").
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct PortFlags {
    pub learning: bool,
    pub flood: bool,
    pub bcast_flood: bool,
    pub mcast_flood: bool,
    pub isolated: bool,
    /// 0: no per-port cap.
    pub fdb_max_learned: u32,
}

impl Default for PortFlags {
    fn default() -> Self {
        PortFlags {
            learning: true,
            flood: true,
            bcast_flood: true,
            mcast_flood: true,
            isolated: false,
            fdb_max_learned: 0,
        }
    }
}

/// Which flag lets a flood reach a port (spec F2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FloodClass {
    /// Broadcast, and STP BPDUs (01:80:c2:00:00:00), which flood like
    /// broadcasts while xbridge runs no STP (spec I6).
    Broadcast,
    Multicast,
    UnknownUnicast,
}

impl FloodClass {
    pub fn of(dst: MacAddr) -> FloodClass {
        if dst.is_broadcast() || dst.reserved_group_index() == Some(0) {
            FloodClass::Broadcast
        } else if dst.is_multicast() {
            FloodClass::Multicast
        } else {
            FloodClass::UnknownUnicast
        }
    }
}

impl PortFlags {
    /// Whether a flood of `class` may leave through the port.
    pub fn floods(&self, class: FloodClass) -> bool {
        match class {
            FloodClass::Broadcast => self.bcast_flood,
            FloodClass::Multicast => self.mcast_flood,
            FloodClass::UnknownUnicast => self.flood,
        }
    }
}

/// One bridge port.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// `IF` or `IF.N`.
    pub name: String,
    /// The interface the port's frames enter and leave through.
    pub interface: String,
    pub kind: PortKind,
    pub vlans: VlanSet,
    pub pvid: Option<Vid>,
    pub accept: Accept,
    pub flags: PortFlags,
}

impl PortConfig {
    /// A trunk port with no VLANs, no PVID and default flags.
    pub fn trunk(name: &str) -> PortConfig {
        PortConfig {
            name: name.to_string(),
            interface: name.to_string(),
            kind: PortKind::Trunk,
            vlans: VlanSet::default(),
            pvid: None,
            accept: Accept::All,
            flags: PortFlags::default(),
        }
    }

    /// Parses `IF.N` into a sub-interface port, anything else into a trunk.
    pub fn named(name: &str) -> Result<PortConfig, ConfigError> {
        match name.rsplit_once('.') {
            Some((interface, vid))
                if !interface.is_empty() && vid.chars().all(|c| c.is_ascii_digit()) =>
            {
                let number: i64 = vid
                    .parse()
                    .map_err(|_| ConfigError::BadPortName(name.to_string()))?;
                let wire_vid = Vid::new(number).map_err(|source| ConfigError::Vid {
                    port: name.to_string(),
                    source,
                })?;
                Ok(PortConfig {
                    interface: interface.to_string(),
                    kind: PortKind::SubInterface { wire_vid },
                    ..PortConfig::trunk(name)
                })
            }
            _ => Ok(PortConfig::trunk(name)),
        }
    }

    pub fn with_vlan(mut self, vid: u16, mode: EgressMode) -> Self {
        self.vlans.insert(Vid(vid), mode);
        self
    }

    pub fn with_pvid(mut self, vid: u16) -> Self {
        self.pvid = Some(Vid(vid));
        self
    }

    pub fn with_accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    pub fn with_flags(mut self, flags: PortFlags) -> Self {
        self.flags = flags;
        self
    }
}

/// A static FDB entry (spec L2: never moved, never aged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticEntry {
    pub mac: MacAddr,
    /// `None` with `vlan_filtering off` (the shared VLAN 0).
    pub vid: Option<Vid>,
    pub port: PortId,
}

/// A bridge whose configuration passed every check.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub name: String,
    pub vlan_filtering: bool,
    /// `Duration::ZERO` disables ageing (spec L4).
    pub ageing_time: Duration,
    pub fdb_max_learned: u32,
    pub ports: Vec<PortConfig>,
    pub static_fdb: Vec<StaticEntry>,
}

/// A bridge configuration that cannot work; each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("port {port}: {source}")]
    Vid {
        port: String,
        #[source]
        source: BadVid,
    },
    #[error("`{0}` is not a port name (an interface, or IF.N for a VLAN sub-interface)")]
    BadPortName(String),
    #[error("port {port} has two PVIDs ({first} and {second}); a port has at most one")]
    TwoPvids {
        port: String,
        first: Vid,
        second: Vid,
    },
    #[error("port {0} is declared twice")]
    DuplicatePort(String),
    #[error("bridge {bridge} has {count} ports; at most {MAX_PORTS} are supported")]
    TooManyPorts { bridge: String, count: usize },
    #[error("bridge {0} has no ports")]
    NoPorts(String),
    #[error("static FDB entry {mac}: no port named {port}")]
    UnknownFdbPort { mac: MacAddr, port: String },
    #[error("static FDB entry {mac}: a static entry needs a unicast, non-zero MAC")]
    BadFdbMac { mac: MacAddr },
    #[error("static FDB entry {mac} on {port}: port {port} is not a member of VLAN {vid}")]
    FdbVlanNotOnPort {
        mac: MacAddr,
        port: String,
        vid: Vid,
    },
    #[error("static FDB entry {mac} is given twice for the same VLAN")]
    DuplicateFdb { mac: MacAddr },
    #[error("static FDB entry {mac} needs a `vlan` on a bridge with vlan_filtering")]
    FdbNeedsVlan { mac: MacAddr },
}

impl BridgeConfig {
    /// Checks what spans ports: unique names, the port limit, static entries.
    pub fn validate(self) -> Result<BridgeConfig, ConfigError> {
        if self.ports.is_empty() {
            return Err(ConfigError::NoPorts(self.name));
        }
        if self.ports.len() > MAX_PORTS {
            return Err(ConfigError::TooManyPorts {
                bridge: self.name.clone(),
                count: self.ports.len(),
            });
        }
        for (index, port) in self.ports.iter().enumerate() {
            if self.ports[..index]
                .iter()
                .any(|other| other.name == port.name)
            {
                return Err(ConfigError::DuplicatePort(port.name.clone()));
            }
        }
        for (index, entry) in self.static_fdb.iter().enumerate() {
            self.check_static(entry)?;
            if self.static_fdb[..index]
                .iter()
                .any(|other| other.mac == entry.mac && other.vid == entry.vid)
            {
                return Err(ConfigError::DuplicateFdb { mac: entry.mac });
            }
        }
        Ok(self)
    }

    /// Checks one static FDB entry against the ports (for the file and for
    /// `xbridge fdb add`).
    pub fn check_static(&self, entry: &StaticEntry) -> Result<(), ConfigError> {
        if entry.mac.is_multicast() || entry.mac.is_zero() {
            return Err(ConfigError::BadFdbMac { mac: entry.mac });
        }
        let port = &self.ports[entry.port.index()];
        match (self.vlan_filtering, entry.vid) {
            (true, None) => Err(ConfigError::FdbNeedsVlan { mac: entry.mac }),
            (true, Some(vid)) if !port.vlans.contains(vid.get()) => {
                Err(ConfigError::FdbVlanNotOnPort {
                    mac: entry.mac,
                    port: port.name.clone(),
                    vid,
                })
            }
            _ => Ok(()),
        }
    }

    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|port| port.name == name)
            .map(|index| PortId(index as u16))
    }

    pub fn port(&self, id: PortId) -> &PortConfig {
        &self.ports[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vid_range_is_1_to_4094() {
        assert!(Vid::new(0).is_err());
        assert!(Vid::new(4095).is_err());
        assert_eq!(Vid::new(1).unwrap().get(), 1);
        assert_eq!(Vid::new(4094).unwrap().get(), 4094);
    }

    #[test]
    fn vlan_set_tracks_mode() {
        let mut set = VlanSet::default();
        set.insert(Vid(10), EgressMode::Untagged);
        set.insert(Vid(4094), EgressMode::Tagged);
        assert_eq!(set.mode(10), Some(EgressMode::Untagged));
        assert_eq!(set.mode(4094), Some(EgressMode::Tagged));
        assert_eq!(set.mode(11), None);
        set.insert(Vid(10), EgressMode::Tagged);
        assert_eq!(set.mode(10), Some(EgressMode::Tagged));
        set.remove(Vid(10));
        assert_eq!(set.mode(10), None);
        assert_eq!(set.iter().count(), 1);
    }

    #[test]
    fn port_names_with_a_number_are_sub_interfaces() {
        let port = PortConfig::named("t.10").unwrap();
        assert_eq!(port.interface, "t");
        assert_eq!(port.kind, PortKind::SubInterface { wire_vid: Vid(10) });
        assert_eq!(PortConfig::named("veth.a").unwrap().kind, PortKind::Trunk);
        assert!(matches!(
            PortConfig::named("t.4095"),
            Err(ConfigError::Vid { .. })
        ));
    }

    #[test]
    fn port_set_iterates_members() {
        let mut set = PortSet::EMPTY;
        set.insert(PortId(0));
        set.insert(PortId(63));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![PortId(0), PortId(63)]);
        assert_eq!(set.len(), 2);
    }
}
