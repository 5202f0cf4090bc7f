//! Changes to a running bridge's configuration, decided without I/O: the
//! runtime edits of `xbridge vlan add|del` and `xbridge link set`, what a
//! reload may change, and the differences between two configurations (the
//! `config` events of `xbridge monitor`). The dataplane applies the result
//! as one new immutable snapshot.

use std::fmt;

use crate::config::{
    Accept, BadVid, BridgeConfig, ConfigError, EgressMode, PortConfig, PortId, StaticEntry, Vid,
};
use crate::fdb::{Fdb, FdbEntry, FdbError};
use crate::wire::MacAddr;

/// VIDs `first..=last` (`V` or `V1-V2` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VidRange {
    pub first: u16,
    pub last: u16,
}

impl VidRange {
    pub fn parse(text: &str) -> Result<VidRange, EditError> {
        let bad = || EditError::BadRange(text.to_string());
        let number = |part: &str| -> Result<Vid, EditError> {
            let value: i64 = part.trim().parse().map_err(|_| bad())?;
            Ok(Vid::new(value)?)
        };
        let (first, last) = match text.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => {
                let vid = number(text)?;
                (vid, vid)
            }
        };
        if first > last {
            return Err(bad());
        }
        Ok(VidRange {
            first: first.get(),
            last: last.get(),
        })
    }

    /// Checks a range that came over the control socket.
    pub fn checked(self) -> Result<impl Iterator<Item = Vid>, EditError> {
        let first = Vid::new(i64::from(self.first))?;
        let last = Vid::new(i64::from(self.last))?;
        if first > last {
            return Err(EditError::BadRange(self.to_string()));
        }
        Ok((first.get()..=last.get()).map(|vid| Vid::new(i64::from(vid)).expect("in range")))
    }

    pub fn is_single(self) -> bool {
        self.first == self.last
    }
}

impl fmt::Display for VidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The port switches `xbridge link set` can change; `None` leaves one alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_flood: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcast_flood: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_learned: Option<u32>,
}

impl LinkChanges {
    pub fn is_empty(&self) -> bool {
        *self == LinkChanges::default()
    }
}

/// One runtime edit, as `bridge(8)` would express it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// Adds VIDs to a port or changes their flags (Linux semantics: the
    /// `pvid` and `untagged` flags are set as given, so re-adding the PVID
    /// without `pvid` takes the PVID away).
    VlanAdd {
        port: String,
        vids: VidRange,
        pvid: bool,
        untagged: bool,
    },
    /// Removes VIDs from a port (and the PVID if it is among them).
    VlanDel {
        port: String,
        vids: VidRange,
    },
    LinkSet {
        port: String,
        changes: LinkChanges,
    },
}

/// Why an edit or a reload was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no port {0}")]
    UnknownPort(String),
    #[error("`{0}` is not a VLAN ID or range (V or V1-V2, each 1..=4094)")]
    BadRange(String),
    #[error(transparent)]
    Vid(#[from] BadVid),
    #[error("port {port}: `pvid` with the range {vids} would give it several PVIDs; a port has at most one")]
    PvidRange { port: String, vids: VidRange },
    #[error("port {port} is not a member of VLAN {vid}")]
    NotMember { port: String, vid: u16 },
    #[error("link set dev {0}: nothing to change (learning, flood, mcast_flood, bcast_flood, isolated, accept, max_learned)")]
    NothingToChange(String),
    #[error("{0}")]
    NotReloadable(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn port_index(config: &BridgeConfig, name: &str) -> Result<usize, EditError> {
    config
        .port_id(name)
        .map(PortId::index)
        .ok_or_else(|| EditError::UnknownPort(name.to_string()))
}

/// The configuration after `edit`, validated; `config` is left as it was.
pub fn edited(config: &BridgeConfig, edit: &Edit) -> Result<BridgeConfig, EditError> {
    let mut next = config.clone();
    match edit {
        Edit::VlanAdd {
            port,
            vids,
            pvid,
            untagged,
        } => {
            let index = port_index(config, port)?;
            let range: Vec<Vid> = vids.checked()?.collect();
            if *pvid && !vids.is_single() {
                return Err(EditError::PvidRange {
                    port: port.clone(),
                    vids: *vids,
                });
            }
            let target = &mut next.ports[index];
            let mode = if *untagged {
                EgressMode::Untagged
            } else {
                EgressMode::Tagged
            };
            for vid in range {
                target.vlans.insert(vid, mode);
                if *pvid {
                    target.pvid = Some(vid);
                } else if target.pvid == Some(vid) {
                    target.pvid = None;
                }
            }
        }
        Edit::VlanDel { port, vids } => {
            let index = port_index(config, port)?;
            let range: Vec<Vid> = vids.checked()?.collect();
            let target = &mut next.ports[index];
            if let Some(missing) = range.iter().find(|vid| !target.vlans.contains(vid.get())) {
                return Err(EditError::NotMember {
                    port: port.clone(),
                    vid: missing.get(),
                });
            }
            for vid in &range {
                target.vlans.remove(*vid);
                if target.pvid == Some(*vid) {
                    target.pvid = None;
                }
            }
            // As in Linux, a port's FDB entries of a VLAN go with the VLAN.
            let id = PortId(index as u16);
            next.static_fdb
                .retain(|entry| entry.port != id || entry.vid.is_none_or(|v| !range.contains(&v)));
        }
        Edit::LinkSet { port, changes } => {
            let index = port_index(config, port)?;
            if changes.is_empty() {
                return Err(EditError::NothingToChange(port.clone()));
            }
            let target = &mut next.ports[index];
            let flags = &mut target.flags;
            flags.learning = changes.learning.unwrap_or(flags.learning);
            flags.flood = changes.flood.unwrap_or(flags.flood);
            flags.mcast_flood = changes.mcast_flood.unwrap_or(flags.mcast_flood);
            flags.bcast_flood = changes.bcast_flood.unwrap_or(flags.bcast_flood);
            flags.isolated = changes.isolated.unwrap_or(flags.isolated);
            flags.fdb_max_learned = changes.max_learned.unwrap_or(flags.fdb_max_learned);
            target.accept = changes.accept.unwrap_or(target.accept);
        }
    }
    Ok(next.validate()?)
}

/// Checks that `new` can replace the running `old` without restarting:
/// the same ports (they own sockets and counters) and FDB size.
pub fn check_reload(old: &BridgeConfig, new: &BridgeConfig) -> Result<(), EditError> {
    let restart = |what: String| {
        EditError::NotReloadable(format!(
            "{what}: that needs a restart of the bridge (xbridge run), not a reload"
        ))
    };
    if let Some(added) = new.ports.iter().find(|p| old.port_id(&p.name).is_none()) {
        return Err(restart(format!("port {} would be added", added.name)));
    }
    if let Some(removed) = old.ports.iter().find(|p| new.port_id(&p.name).is_none()) {
        return Err(restart(format!("port {} would be removed", removed.name)));
    }
    if let Some((index, port)) = new
        .ports
        .iter()
        .enumerate()
        .find(|(index, port)| old.ports[*index].name != port.name)
    {
        return Err(restart(format!(
            "port {} would move from position {} to {}",
            port.name,
            old.port_id(&port.name).map_or(0, PortId::index) + 1,
            index + 1
        )));
    }
    if new.fdb_max_learned != old.fdb_max_learned {
        return Err(restart(format!(
            "fdb_max_learned would change from {} to {} (the FDB is sized at start)",
            old.fdb_max_learned, new.fdb_max_learned
        )));
    }
    Ok(())
}

/// What a change touched, for `xbridge monitor vlan|link|fdb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeClass {
    Bridge,
    Vlan,
    Link,
    Fdb,
}

/// One difference between two configurations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub class: ChangeClass,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    pub change: String,
}

impl fmt::Display for Change {
    /// As bridge(8) words: `dev PORT CHANGE`, or the change alone for the bridge.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(port) => write!(f, "dev {port} {}", self.change),
            None => write!(f, "{}", self.change),
        }
    }
}

fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

fn accept_name(accept: Accept) -> &'static str {
    match accept {
        Accept::All => "all",
        Accept::Untagged => "untagged",
        Accept::Tagged => "tagged",
    }
}

fn mode_name(mode: EgressMode) -> &'static str {
    match mode {
        EgressMode::Untagged => "untagged",
        EgressMode::Tagged => "tagged",
    }
}

/// Every difference from `old` to `new` (same ports, by position).
pub fn differences(old: &BridgeConfig, new: &BridgeConfig) -> Vec<Change> {
    let mut changes = Vec::new();
    let bridge = |change: String| Change {
        class: ChangeClass::Bridge,
        port: None,
        change,
    };
    if old.vlan_filtering != new.vlan_filtering {
        changes.push(bridge(format!(
            "vlan_filtering {} -> {}",
            on_off(old.vlan_filtering),
            on_off(new.vlan_filtering)
        )));
    }
    if old.ageing_time != new.ageing_time {
        changes.push(bridge(format!(
            "ageing_time {}s -> {}s",
            old.ageing_time.as_secs(),
            new.ageing_time.as_secs()
        )));
    }
    for (before, after) in old.ports.iter().zip(&new.ports) {
        port_differences(before, after, &mut changes);
    }
    let describe = |config: &BridgeConfig, entry: &StaticEntry| {
        let vlan = entry.vid.map(|v| format!(" vlan {v}")).unwrap_or_default();
        (
            config.port(entry.port).name.clone(),
            format!("static {}{vlan}", entry.mac),
        )
    };
    for entry in &old.static_fdb {
        if !new.static_fdb.contains(entry) {
            let (port, what) = describe(old, entry);
            changes.push(Change {
                class: ChangeClass::Fdb,
                port: Some(port),
                change: format!("{what} removed"),
            });
        }
    }
    for entry in &new.static_fdb {
        if !old.static_fdb.contains(entry) {
            let (port, what) = describe(new, entry);
            changes.push(Change {
                class: ChangeClass::Fdb,
                port: Some(port),
                change: format!("{what} added"),
            });
        }
    }
    changes
}

fn port_differences(before: &PortConfig, after: &PortConfig, changes: &mut Vec<Change>) {
    let mut push = |class, change: String| {
        changes.push(Change {
            class,
            port: Some(after.name.clone()),
            change,
        })
    };
    for vid in crate::config::Vid::MIN..=crate::config::Vid::MAX {
        match (before.vlans.mode(vid), after.vlans.mode(vid)) {
            (None, Some(mode)) => push(
                ChangeClass::Vlan,
                format!("vlan {vid} added ({})", mode_name(mode)),
            ),
            (Some(_), None) => push(ChangeClass::Vlan, format!("vlan {vid} removed")),
            (Some(was), Some(now)) if was != now => push(
                ChangeClass::Vlan,
                format!("vlan {vid} {} -> {}", mode_name(was), mode_name(now)),
            ),
            _ => {}
        }
    }
    if before.pvid != after.pvid {
        let show = |pvid: Option<Vid>| pvid.map_or("none".to_string(), |v| v.to_string());
        push(
            ChangeClass::Vlan,
            format!("pvid {} -> {}", show(before.pvid), show(after.pvid)),
        );
    }
    if before.accept != after.accept {
        push(
            ChangeClass::Link,
            format!(
                "accept {} -> {}",
                accept_name(before.accept),
                accept_name(after.accept)
            ),
        );
    }
    let (was, now) = (before.flags, after.flags);
    for (name, old, new) in [
        ("learning", was.learning, now.learning),
        ("flood", was.flood, now.flood),
        ("mcast_flood", was.mcast_flood, now.mcast_flood),
        ("bcast_flood", was.bcast_flood, now.bcast_flood),
        ("isolated", was.isolated, now.isolated),
    ] {
        if old != new {
            push(
                ChangeClass::Link,
                format!("{name} {} -> {}", on_off(old), on_off(new)),
            );
        }
    }
    if was.fdb_max_learned != now.fdb_max_learned {
        push(
            ChangeClass::Link,
            format!(
                "max_learned {} -> {}",
                was.fdb_max_learned, now.fdb_max_learned
            ),
        );
    }
}

/// (port, VID) memberships `old` has and `new` has not: their FDB entries go.
pub fn removed_memberships(old: &BridgeConfig, new: &BridgeConfig) -> Vec<(PortId, u16)> {
    let mut removed = Vec::new();
    for (index, (before, after)) in old.ports.iter().zip(&new.ports).enumerate() {
        for (vid, _) in before.vlans.iter() {
            if !after.vlans.contains(vid.get()) {
                removed.push((PortId(index as u16), vid.get()));
            }
        }
    }
    removed
}

/// The FDB key of a static entry of `config` (VLAN 0 without filtering).
pub fn static_key(config: &BridgeConfig, entry: &StaticEntry) -> (MacAddr, u16) {
    let vid = match (config.vlan_filtering, entry.vid) {
        (true, Some(vid)) => vid.get(),
        _ => 0,
    };
    (entry.mac, vid)
}

/// Puts every static entry of `next` into `fdb` (also one a runtime `fdb
/// del` removed, or one a learned entry holds now): all or nothing, so on
/// error `fdb` is as it was.
pub fn install_statics(fdb: &Fdb, next: &BridgeConfig) -> Result<(), FdbError> {
    let mut undo: Vec<(MacAddr, u16, Option<FdbEntry>)> = Vec::new();
    for entry in &next.static_fdb {
        let (mac, vid) = static_key(next, entry);
        let before = fdb.get(mac, vid);
        if before.is_some_and(|e| e.is_static && e.port == entry.port) {
            continue;
        }
        if let Err(err) = fdb.add_static(mac, vid, entry.port) {
            for (mac, vid, before) in undo.into_iter().rev() {
                fdb.remove(mac, vid);
                match before {
                    Some(old) if old.is_static => {
                        let _ = fdb.add_static(mac, vid, old.port);
                    }
                    Some(old) => {
                        fdb.learn(mac, vid, old.port, old.last_seen, 0);
                    }
                    None => {}
                }
            }
            return Err(err);
        }
        undo.push((mac, vid, before));
    }
    Ok(())
}

/// After `next` replaced `old`, as Linux does: static entries `old` had and
/// `next` has not go, a VLAN leaving a port takes the port's entries in it
/// along, and switching `vlan_filtering` (which changes what the FDB's VLAN
/// means) drops every dynamic entry.
pub fn tidy_fdb(fdb: &Fdb, old: &BridgeConfig, next: &BridgeConfig) {
    let filtering_changed = old.vlan_filtering != next.vlan_filtering;
    let kept: Vec<(MacAddr, u16)> = next
        .static_fdb
        .iter()
        .map(|entry| static_key(next, entry))
        .collect();
    for entry in &old.static_fdb {
        // An entry that only moved to another port keeps its key.
        let key = static_key(old, entry);
        if !kept.contains(&key) {
            fdb.remove(key.0, key.1);
        }
    }
    let removed = removed_memberships(old, next);
    fdb.retain(
        |entry| {
            (entry.is_static || !filtering_changed) && !removed.contains(&(entry.port, entry.vid))
        },
        |_| {},
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortFlags;
    use std::time::Duration;

    fn bridge() -> BridgeConfig {
        BridgeConfig {
            name: "br".into(),
            vlan_filtering: true,
            ageing_time: Duration::from_secs(300),
            fdb_max_learned: 1000,
            ports: vec![
                PortConfig::trunk("a")
                    .with_vlan(10, EgressMode::Untagged)
                    .with_pvid(10),
                PortConfig::trunk("b").with_vlan(10, EgressMode::Tagged),
            ],
            static_fdb: vec![],
        }
        .validate()
        .unwrap()
    }

    fn add(port: &str, vids: &str, pvid: bool, untagged: bool) -> Edit {
        Edit::VlanAdd {
            port: port.into(),
            vids: VidRange::parse(vids).unwrap(),
            pvid,
            untagged,
        }
    }

    #[test]
    fn ranges_parse_and_reject_reserved_vids() {
        assert_eq!(
            VidRange::parse("10-20").unwrap(),
            VidRange {
                first: 10,
                last: 20
            }
        );
        assert!(VidRange::parse("0").is_err());
        assert!(VidRange::parse("4095").is_err());
        assert!(VidRange::parse("20-10").is_err());
        assert!(VidRange::parse("ten").is_err());
    }

    #[test]
    fn vlan_add_and_del_follow_linux_flags() {
        let config = bridge();
        let next = edited(&config, &add("b", "20-22", false, false)).unwrap();
        assert_eq!(next.ports[1].vlans.iter().count(), 4);
        let moved = edited(&next, &add("b", "21", true, true)).unwrap();
        assert_eq!(moved.ports[1].pvid.map(Vid::get), Some(21));
        assert_eq!(moved.ports[1].vlans.mode(21), Some(EgressMode::Untagged));
        // Re-adding the PVID without `pvid` takes it away, as in Linux.
        let cleared = edited(&moved, &add("b", "21", false, false)).unwrap();
        assert_eq!(cleared.ports[1].pvid, None);
        let deleted = edited(
            &moved,
            &Edit::VlanDel {
                port: "b".into(),
                vids: VidRange::parse("21").unwrap(),
            },
        )
        .unwrap();
        assert_eq!(deleted.ports[1].pvid, None, "the PVID goes with its VLAN");
        assert!(!deleted.ports[1].vlans.contains(21));
        assert_eq!(removed_memberships(&moved, &deleted), vec![(PortId(1), 21)]);
    }

    #[test]
    fn bad_edits_change_nothing_and_say_why() {
        let config = bridge();
        assert_eq!(
            edited(&config, &add("nope", "10", false, false)).unwrap_err(),
            EditError::UnknownPort("nope".into())
        );
        assert!(matches!(
            edited(&config, &add("a", "10-11", true, false)),
            Err(EditError::PvidRange { .. })
        ));
        let raw = Edit::VlanAdd {
            port: "a".into(),
            vids: VidRange { first: 0, last: 0 },
            pvid: false,
            untagged: false,
        };
        assert!(matches!(edited(&config, &raw), Err(EditError::Vid(_))));
        assert!(matches!(
            edited(
                &config,
                &Edit::VlanDel {
                    port: "a".into(),
                    vids: VidRange::parse("30").unwrap()
                }
            ),
            Err(EditError::NotMember { vid: 30, .. })
        ));
        assert!(matches!(
            edited(
                &config,
                &Edit::LinkSet {
                    port: "a".into(),
                    changes: LinkChanges::default()
                }
            ),
            Err(EditError::NothingToChange(_))
        ));
    }

    #[test]
    fn link_set_changes_only_what_is_given_and_is_described() {
        let config = bridge();
        let next = edited(
            &config,
            &Edit::LinkSet {
                port: "a".into(),
                changes: LinkChanges {
                    learning: Some(false),
                    accept: Some(Accept::Untagged),
                    ..LinkChanges::default()
                },
            },
        )
        .unwrap();
        assert_eq!(
            next.ports[0].flags,
            PortFlags {
                learning: false,
                ..PortFlags::default()
            }
        );
        let changes: Vec<String> = differences(&config, &next)
            .into_iter()
            .map(|c| format!("{:?} {} {}", c.class, c.port.unwrap(), c.change))
            .collect();
        assert_eq!(
            changes,
            vec!["Link a accept all -> untagged", "Link a learning on -> off"]
        );
    }

    #[test]
    fn a_reload_keeps_the_ports() {
        let config = bridge();
        let mut more = config.clone();
        more.ports.push(PortConfig::trunk("c"));
        assert!(check_reload(&config, &more)
            .unwrap_err()
            .to_string()
            .contains("port c would be added"));
        let mut fewer = config.clone();
        fewer.ports.pop();
        assert!(check_reload(&config, &fewer)
            .unwrap_err()
            .to_string()
            .contains("port b would be removed"));
        let mut swapped = config.clone();
        swapped.ports.reverse();
        assert!(check_reload(&config, &swapped).is_err());
        let mut vlans = config.clone();
        vlans.ports[1] = vlans.ports[1].clone().with_vlan(30, EgressMode::Tagged);
        assert!(check_reload(&config, &vlans).is_ok());
        assert_eq!(
            differences(&config, &vlans)[0].change,
            "vlan 30 added (tagged)"
        );
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn with_static(mut config: BridgeConfig, last: u8, port: u16) -> BridgeConfig {
        config.static_fdb.push(StaticEntry {
            mac: mac(last),
            vid: Vid::new(10).ok(),
            port: PortId(port),
        });
        config.validate().unwrap()
    }

    #[test]
    fn a_vlan_leaving_a_port_takes_its_entries_along() {
        let old = with_static(bridge(), 1, 1);
        let fdb = Fdb::new(1000);
        install_statics(&fdb, &old).unwrap();
        fdb.learn(mac(2), 10, PortId(1), crate::fdb::Millis(0), 0);
        fdb.learn(mac(3), 10, PortId(0), crate::fdb::Millis(0), 0);
        let next = edited(
            &old,
            &Edit::VlanDel {
                port: "b".into(),
                vids: VidRange::parse("10").unwrap(),
            },
        )
        .unwrap();
        assert!(
            next.static_fdb.is_empty(),
            "the static entry went with VLAN 10"
        );
        tidy_fdb(&fdb, &old, &next);
        let left: Vec<(MacAddr, PortId)> = fdb.entries().iter().map(|e| (e.mac, e.port)).collect();
        assert_eq!(left, vec![(mac(3), PortId(0))], "port a's entry stays");
    }

    #[test]
    fn statics_follow_the_file_and_a_moved_one_keeps_its_key() {
        let old = with_static(bridge(), 1, 1);
        let fdb = Fdb::new(1000);
        install_statics(&fdb, &old).unwrap();
        let moved = with_static(bridge(), 1, 0);
        install_statics(&fdb, &moved).unwrap();
        tidy_fdb(&fdb, &old, &moved);
        let entry = fdb.get(mac(1), 10).expect("still there");
        assert_eq!((entry.port, entry.is_static), (PortId(0), true));
        // Deleted at runtime, put back by the next install.
        fdb.remove(mac(1), 10);
        install_statics(&fdb, &moved).unwrap();
        assert!(fdb.get(mac(1), 10).is_some_and(|e| e.is_static));
        // Gone from the file: gone from the FDB.
        tidy_fdb(&fdb, &moved, &bridge());
        assert_eq!(fdb.get(mac(1), 10), None);
    }

    #[test]
    fn switching_filtering_drops_learned_entries_and_rekeys_statics() {
        let old = with_static(bridge(), 1, 1);
        let fdb = Fdb::new(1000);
        install_statics(&fdb, &old).unwrap();
        fdb.learn(mac(2), 10, PortId(1), crate::fdb::Millis(0), 0);
        let mut next = old.clone();
        next.vlan_filtering = false;
        install_statics(&fdb, &next).unwrap();
        tidy_fdb(&fdb, &old, &next);
        let left: Vec<(MacAddr, u16, bool)> = fdb
            .entries()
            .iter()
            .map(|e| (e.mac, e.vid, e.is_static))
            .collect();
        assert_eq!(left, vec![(mac(1), 0, true)]);
    }

    #[test]
    fn installing_statics_is_all_or_nothing() {
        let fdb = Fdb::new(10);
        fdb.learn(mac(1), 10, PortId(1), crate::fdb::Millis(0), 0);
        let before = fdb.entries();
        let mut config = bridge();
        // Far more entries than the smallest table holds.
        config.static_fdb = (0..5000u32)
            .map(|n| StaticEntry {
                mac: MacAddr::from_u64(0x0200_0000_0000 + u64::from(n)),
                vid: Vid::new(10).ok(),
                port: PortId(0),
            })
            .collect();
        let config = config.validate().unwrap();
        assert!(matches!(
            install_statics(&fdb, &config),
            Err(FdbError::Full { .. })
        ));
        assert_eq!(fdb.entries(), before, "nothing stayed behind");
    }
}
