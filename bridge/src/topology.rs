//! Topology files (TOML): hosts (network namespaces), veth links, addresses
//! and bridges with their ports and VLANs, parsed once into validated types.
//! Every error names the file and line. The format is documented in
//! `topologies/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    Accept, BridgeConfig, ConfigError, EgressMode, PortConfig, PortFlags, PortId, PortKind,
    StaticEntry, Vid,
};
use crate::wire::MacAddr;

/// The longest interface name Linux accepts.
const IFNAMSIZ_MAX: usize = 15;

/// A topology file that cannot be used, with where.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// An interface address with its prefix, e.g. 192.168.50.1/24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A host: a network namespace named like the host, with interfaces.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub interfaces: Vec<HostInterface>,
}

#[derive(Debug, Clone)]
pub struct HostInterface {
    pub name: String,
    pub addresses: Vec<Cidr>,
    pub mac: Option<MacAddr>,
}

/// One end of a veth link: an interface in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub namespace: String,
    pub interface: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.namespace, self.interface)
    }
}

/// A veth pair.
#[derive(Debug, Clone)]
pub struct Link {
    pub ends: [Endpoint; 2],
    /// RX/TX queues of each end (one worker per queue).
    pub queues: u32,
}

/// A bridge and the namespace it lives in.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub namespace: String,
    pub config: BridgeConfig,
}

/// A whole validated topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub path: PathBuf,
    pub hosts: Vec<Host>,
    pub bridges: Vec<BridgeSpec>,
    pub links: Vec<Link>,
}

impl Topology {
    /// Every namespace the topology creates, hosts first, each once.
    pub fn namespaces(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.hosts
            .iter()
            .map(|h| h.name.clone())
            .chain(self.bridges.iter().map(|b| b.namespace.clone()))
            .filter(|name| seen.insert(name.clone()))
            .collect()
    }

    /// Whether any bridge needs VLAN filtering or sub-interfaces.
    pub fn uses_vlans(&self) -> bool {
        self.bridges.iter().any(|bridge| {
            bridge.config.vlan_filtering
                && bridge.config.ports.iter().any(|port| {
                    matches!(port.kind, PortKind::SubInterface { .. })
                        || port
                            .vlans
                            .iter()
                            .any(|(vid, mode)| vid.get() != 1 || mode == EgressMode::Tagged)
                        || port.pvid.is_some_and(|pvid| pvid.get() != 1)
                })
        })
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeSpec> {
        self.bridges.iter().find(|b| b.config.name == name)
    }

    /// The same topology with `prefix` before every namespace and bridge
    /// name, so copies of one file can run side by side (tests do this).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Topology, TopologyError> {
        if prefix.is_empty() {
            return Ok(self);
        }
        let invalid = |message: String| TopologyError::Invalid {
            path: self.path.clone(),
            line: 1,
            message,
        };
        check_namespace_name(&format!("{prefix}x"))
            .map_err(|m| invalid(format!("--prefix: {m}")))?;
        let rename = |name: &mut String| *name = format!("{prefix}{name}");
        for host in &mut self.hosts {
            rename(&mut host.name);
        }
        for bridge in &mut self.bridges {
            rename(&mut bridge.namespace);
            rename(&mut bridge.config.name);
            check_interface_name(&bridge.config.name)
                .map_err(|m| invalid(format!("bridge name with --prefix {prefix}: {m}")))?;
        }
        for link in &mut self.links {
            for end in &mut link.ends {
                rename(&mut end.namespace);
            }
        }
        Ok(self)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::parse(path, &text)
    }

    /// Validates `text`, read from `path` (for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Topology, TopologyError> {
        let invalid = |offset: usize, message: String| TopologyError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawTopology = toml::from_str(text).map_err(|err| {
            let offset = err.span().map_or(0, |span| span.start);
            let message: Vec<&str> = err
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            invalid(offset, message.join("; "))
        })?;

        let mut namespaces: BTreeMap<String, usize> = BTreeMap::new();
        let mut hosts = Vec::new();
        for spanned in &raw.hosts {
            let at = spanned.span().start;
            let host = spanned.get_ref();
            check_namespace_name(&host.name).map_err(|m| invalid(at, m))?;
            if namespaces.insert(host.name.clone(), at).is_some() {
                return Err(invalid(at, format!("host {} is declared twice", host.name)));
            }
            let mut interfaces = Vec::new();
            for interface in &host.interfaces {
                check_interface_name(&interface.name)
                    .map_err(|m| invalid(at, format!("host {}: {m}", host.name)))?;
                if interface.name.contains('.') {
                    return Err(invalid(
                        at,
                        format!(
                            "host {}: interface {}: VLAN sub-interfaces in hosts need the kernel's 8021q module; \
                             put the VLAN on a bridge sub-interface port (IF.N) instead",
                            host.name, interface.name
                        ),
                    ));
                }
                let addresses = interface
                    .addresses
                    .iter()
                    .map(|text| parse_cidr(text))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| {
                        invalid(
                            at,
                            format!("host {}: interface {}: {m}", host.name, interface.name),
                        )
                    })?;
                let mac = interface
                    .mac
                    .as_deref()
                    .map(str::parse::<MacAddr>)
                    .transpose()
                    .map_err(|e| invalid(at, format!("host {}: {e}", host.name)))?;
                interfaces.push(HostInterface {
                    name: interface.name.clone(),
                    addresses,
                    mac,
                });
            }
            hosts.push(Host {
                name: host.name.clone(),
                interfaces,
            });
        }

        let mut bridge_namespaces = BTreeSet::new();
        let mut bridge_names = BTreeSet::new();
        for spanned in &raw.bridges {
            let bridge = spanned.get_ref();
            let at = spanned.span().start;
            check_interface_name(&bridge.name)
                .map_err(|m| invalid(at, format!("bridge name: {m}")))?;
            if !bridge_names.insert(bridge.name.clone()) {
                return Err(invalid(
                    at,
                    format!("bridge {} is declared twice", bridge.name),
                ));
            }
            let namespace = bridge
                .namespace
                .clone()
                .unwrap_or_else(|| bridge.name.clone());
            check_namespace_name(&namespace).map_err(|m| invalid(at, m))?;
            if namespaces.contains_key(&namespace) {
                return Err(invalid(
                    at,
                    format!("bridge {}: namespace {namespace} is already a host's; a bridge gets its own", bridge.name),
                ));
            }
            if !bridge_namespaces.insert(namespace.clone()) {
                return Err(invalid(
                    at,
                    format!("namespace {namespace} holds two bridges"),
                ));
            }
        }

        // Links, and which interfaces exist in which namespace.
        let all_namespaces: BTreeSet<String> = namespaces
            .keys()
            .cloned()
            .chain(bridge_namespaces.iter().cloned())
            .collect();
        let mut endpoints = BTreeSet::new();
        let mut links = Vec::new();
        for spanned in &raw.links {
            let at = spanned.span().start;
            let link = spanned.get_ref();
            let mut ends = Vec::new();
            for text in [&link.a, &link.b] {
                let end = parse_endpoint(text).map_err(|m| invalid(at, m))?;
                if !all_namespaces.contains(&end.namespace) {
                    return Err(invalid(
                        at,
                        format!(
                            "link end {end}: no host or bridge namespace named {}",
                            end.namespace
                        ),
                    ));
                }
                if !endpoints.insert(end.clone()) {
                    return Err(invalid(at, format!("interface {end} is used by two links")));
                }
                ends.push(end);
            }
            let queues = link.queues.unwrap_or(1);
            if !(1..=64).contains(&queues) {
                return Err(invalid(
                    at,
                    format!("link queues must be 1..=64, not {queues}"),
                ));
            }
            links.push(Link {
                ends: [ends[0].clone(), ends[1].clone()],
                queues,
            });
        }
        for host in &hosts {
            for interface in &host.interfaces {
                let end = Endpoint {
                    namespace: host.name.clone(),
                    interface: interface.name.clone(),
                };
                if !endpoints.contains(&end) {
                    let at = namespaces[&host.name];
                    return Err(invalid(
                        at,
                        format!("host interface {end} is not on any link"),
                    ));
                }
            }
        }

        let mut bridges = Vec::new();
        for spanned in &raw.bridges {
            let at = spanned.span().start;
            let bridge = spanned.get_ref();
            let namespace = bridge
                .namespace
                .clone()
                .unwrap_or_else(|| bridge.name.clone());
            let config =
                build_bridge(bridge, &namespace, &endpoints).map_err(|(offset, message)| {
                    invalid(
                        offset.unwrap_or(at),
                        format!("bridge {}: {message}", bridge.name),
                    )
                })?;
            bridges.push(BridgeSpec { namespace, config });
        }

        Ok(Topology {
            path: path.to_path_buf(),
            hosts,
            bridges,
            links,
        })
    }
}

type Located = (Option<usize>, String);

fn build_bridge(
    raw: &RawBridge,
    namespace: &str,
    endpoints: &BTreeSet<Endpoint>,
) -> Result<BridgeConfig, Located> {
    let default_pvid = match &raw.default_pvid {
        None => Some(Vid::new(1).expect("1 is a VID")),
        Some(PvidValue::Number(number)) => {
            Some(Vid::new(*number).map_err(|e| (None, format!("default_pvid: {e}")))?)
        }
        Some(PvidValue::Word(word)) if word == "none" => None,
        Some(PvidValue::Word(word)) => {
            return Err((
                None,
                format!("default_pvid must be a VID or \"none\", not {word:?}"),
            ));
        }
    };
    let mut ports = Vec::new();
    for spanned in &raw.ports {
        let at = Some(spanned.span().start);
        let raw_port = spanned.get_ref();
        let located = |message: String| (at, format!("port {}: {message}", raw_port.name));
        let mut port = PortConfig::named(&raw_port.name).map_err(|e| (at, e.to_string()))?;
        check_interface_name(&port.interface).map_err(located)?;
        let interface = Endpoint {
            namespace: namespace.to_string(),
            interface: port.interface.clone(),
        };
        if !endpoints.contains(&interface) {
            let what = match port.kind {
                PortKind::Trunk => "interface".to_string(),
                PortKind::SubInterface { .. } => format!(
                    "sub-interface on a missing trunk: interface {}",
                    port.interface
                ),
            };
            return Err(located(format!(
                "{what} is not on any link (add a link with end \"{namespace}:{}\")",
                port.interface
            )));
        }
        let mut pvid = None;
        let mut set_pvid = |vid: Vid| match pvid {
            Some(first) if first != vid => Err(ConfigError::TwoPvids {
                port: raw_port.name.clone(),
                first,
                second: vid,
            }),
            _ => {
                pvid = Some(vid);
                Ok(())
            }
        };
        match &raw_port.vlans {
            None => {
                if let Some(vid) = default_pvid {
                    port.vlans.insert(vid, EgressMode::Untagged);
                    set_pvid(vid).map_err(|e| (at, e.to_string()))?;
                }
            }
            Some(vlans) => {
                for vlan in vlans {
                    let (first, last) = vlan.vid.range().map_err(&located)?;
                    let mode = if vlan.untagged {
                        EgressMode::Untagged
                    } else {
                        EgressMode::Tagged
                    };
                    if vlan.pvid && first != last {
                        return Err(located(format!(
                            "pvid set on the range {first}-{last}; a PVID is one VID"
                        )));
                    }
                    for vid in first.get()..=last.get() {
                        port.vlans.insert(
                            Vid::new(i64::from(vid)).expect("inside a checked range"),
                            mode,
                        );
                    }
                    if vlan.pvid {
                        set_pvid(first).map_err(|e| (at, e.to_string()))?;
                    }
                }
            }
        }
        match &raw_port.pvid {
            None => {}
            Some(PvidValue::Number(number)) => {
                let vid = Vid::new(*number).map_err(|e| located(format!("pvid: {e}")))?;
                set_pvid(vid).map_err(|e| (at, e.to_string()))?;
            }
            Some(PvidValue::Word(word)) if word == "none" && pvid.is_some() => {
                return Err(located(
                    "pvid = \"none\" contradicts a VLAN marked pvid".to_string(),
                ));
            }
            Some(PvidValue::Word(word)) if word == "none" => {}
            Some(PvidValue::Word(word)) => {
                return Err(located(format!(
                    "pvid must be a VID or \"none\", not {word:?}"
                )))
            }
        }
        port.pvid = pvid;
        port.accept = raw_port.accept.unwrap_or_default();
        let defaults = PortFlags::default();
        port.flags = PortFlags {
            learning: raw_port.learning.unwrap_or(defaults.learning),
            flood: raw_port.flood.unwrap_or(defaults.flood),
            bcast_flood: raw_port.bcast_flood.unwrap_or(defaults.bcast_flood),
            mcast_flood: raw_port.mcast_flood.unwrap_or(defaults.mcast_flood),
            isolated: raw_port.isolated.unwrap_or(defaults.isolated),
            fdb_max_learned: raw_port.fdb_max_learned.unwrap_or(0),
        };
        ports.push(port);
    }
    let mut static_fdb = Vec::new();
    for spanned in &raw.fdb {
        let at = Some(spanned.span().start);
        let entry = spanned.get_ref();
        let mac: MacAddr = entry
            .mac
            .parse()
            .map_err(|e: crate::wire::BadMac| (at, e.to_string()))?;
        let port = ports
            .iter()
            .position(|p| p.name == entry.port)
            .map(|index| PortId(index as u16))
            .ok_or_else(|| {
                (
                    at,
                    format!("static FDB entry {mac}: no port named {}", entry.port),
                )
            })?;
        let vid = entry
            .vlan
            .map(Vid::new)
            .transpose()
            .map_err(|e| (at, format!("static FDB entry {mac}: {e}")))?;
        static_fdb.push(StaticEntry { mac, vid, port });
    }
    let ageing_time = match raw.ageing_time {
        Some(seconds) if seconds < 0.0 || !seconds.is_finite() => {
            return Err((
                None,
                format!("ageing_time must be 0 or more seconds, not {seconds}"),
            ));
        }
        Some(seconds) => Duration::from_secs_f64(seconds),
        None => Duration::from_secs(300),
    };
    BridgeConfig {
        name: raw.name.clone(),
        vlan_filtering: raw.vlan_filtering.unwrap_or(true),
        ageing_time,
        fdb_max_learned: raw.fdb_max_learned.unwrap_or(65536),
        ports,
        static_fdb,
    }
    .validate()
    .map_err(|e| (None, e.to_string()))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > IFNAMSIZ_MAX {
        return Err(format!(
            "interface name {name:?} must be 1 to {IFNAMSIZ_MAX} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
        || name == "."
        || name == ".."
    {
        return Err(format!(
            "interface name {name:?} may not contain '/', ':' or spaces"
        ));
    }
    Ok(())
}

fn check_namespace_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || name.starts_with('.') {
        return Err(format!(
            "namespace name {name:?} must be 1 to 64 characters and not start with '.'"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "namespace name {name:?} may only use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let (namespace, interface) = text
        .split_once(':')
        .ok_or_else(|| format!("link end {text:?} must be \"namespace:interface\""))?;
    check_interface_name(interface)?;
    if interface.contains('.') {
        return Err(format!(
            "link end {text:?}: a veth end cannot be a VLAN sub-interface; declare the port IF.N on the bridge"
        ));
    }
    Ok(Endpoint {
        namespace: namespace.to_string(),
        interface: interface.to_string(),
    })
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("address {text:?} needs a prefix length, like 192.168.50.1/24"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("prefix {prefix:?} is not a number"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(format!("prefix /{prefix} is longer than {max}"));
    }
    Ok(Cidr { address, prefix })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
    #[serde(default)]
    bridges: Vec<Spanned<RawBridge>>,
    #[serde(default)]
    links: Vec<Spanned<RawLink>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    #[serde(default)]
    interfaces: Vec<RawHostInterface>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostInterface {
    name: String,
    #[serde(default)]
    addresses: Vec<String>,
    mac: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    a: String,
    b: String,
    queues: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: String,
    namespace: Option<String>,
    vlan_filtering: Option<bool>,
    ageing_time: Option<f64>,
    fdb_max_learned: Option<u32>,
    default_pvid: Option<PvidValue>,
    #[serde(default)]
    ports: Vec<Spanned<RawPort>>,
    #[serde(default)]
    fdb: Vec<Spanned<RawFdb>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PvidValue {
    Number(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    vlans: Option<Vec<RawVlan>>,
    pvid: Option<PvidValue>,
    accept: Option<Accept>,
    learning: Option<bool>,
    flood: Option<bool>,
    bcast_flood: Option<bool>,
    mcast_flood: Option<bool>,
    isolated: Option<bool>,
    fdb_max_learned: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVlan {
    vid: VidSpec,
    #[serde(default)]
    pvid: bool,
    #[serde(default)]
    untagged: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VidSpec {
    One(i64),
    Range(String),
}

impl VidSpec {
    fn range(&self) -> Result<(Vid, Vid), String> {
        match self {
            VidSpec::One(vid) => {
                let vid = Vid::new(*vid).map_err(|e| e.to_string())?;
                Ok((vid, vid))
            }
            VidSpec::Range(text) => {
                let (low, high) = text.split_once('-').unwrap_or((text, text));
                let parse = |part: &str| -> Result<Vid, String> {
                    let number: i64 = part.trim().parse().map_err(|_| {
                        format!("vid {text:?} is not a VID or a range like \"100-200\"")
                    })?;
                    Vid::new(number).map_err(|e| e.to_string())
                };
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("vid range {text:?} runs backwards"));
                }
                Ok((low, high))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFdb {
    mac: String,
    port: String,
    vlan: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, String> {
        Topology::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())
    }

    const TWO: &str = r#"
[[hosts]]
name = "ns1"
interfaces = [{ name = "eth0", addresses = ["192.168.50.1/24"] }]

[[hosts]]
name = "ns2"
interfaces = [{ name = "eth0", addresses = ["192.168.50.2/24"] }]

[[bridges]]
name = "br0"
ports = [{ name = "p1" }, { name = "p2" }]

[[links]]
a = "ns1:eth0"
b = "br0:p1"

[[links]]
a = "ns2:eth0"
b = "br0:p2"
"#;

    #[test]
    fn a_plain_topology_parses_with_default_pvid() {
        let topology = parse(TWO).unwrap();
        assert_eq!(topology.namespaces(), ["ns1", "ns2", "br0"]);
        let bridge = &topology.bridges[0];
        assert_eq!(bridge.namespace, "br0");
        assert_eq!(bridge.config.ports[0].pvid.map(Vid::get), Some(1));
        assert_eq!(
            bridge.config.ports[0].vlans.mode(1),
            Some(EgressMode::Untagged)
        );
        assert!(!topology.uses_vlans());
    }

    #[test]
    fn errors_name_the_line() {
        let bad_vid = TWO.replace(
            r#"{ name = "p2" }"#,
            r#"{ name = "p2", vlans = [{ vid = 4095 }] }"#,
        );
        let err = parse(&bad_vid).unwrap_err();
        assert!(err.starts_with("t.toml:12:"), "{err}");
        assert!(err.contains("4095 is outside 1..=4094"), "{err}");

        let err = parse("[[hosts]]\nname = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(
            err.starts_with("t.toml:3:") && err.contains("unknown field `bogus`"),
            "{err}"
        );
    }

    #[test]
    fn two_pvids_are_rejected() {
        let text = TWO.replace(
            r#"{ name = "p2" }"#,
            r#"{ name = "p2", vlans = [{ vid = 10, pvid = true }, { vid = 20, pvid = true }] }"#,
        );
        assert!(parse(&text).unwrap_err().contains("two PVIDs (10 and 20)"));
        let text = TWO.replace(
            r#"{ name = "p2" }"#,
            r#"{ name = "p2", vlans = [{ vid = 10, pvid = true }], pvid = 30 }"#,
        );
        assert!(parse(&text).unwrap_err().contains("two PVIDs"));
    }

    #[test]
    fn a_sub_interface_needs_its_trunk_on_a_link() {
        let text = TWO.replace(
            r#"{ name = "p2" }"#,
            r#"{ name = "p2" }, { name = "t.10" }"#,
        );
        let err = parse(&text).unwrap_err();
        assert!(
            err.contains("sub-interface on a missing trunk: interface t"),
            "{err}"
        );
    }

    #[test]
    fn missing_port_interfaces_and_unknown_namespaces_are_rejected() {
        let text = TWO.replace(r#"{ name = "p2" }"#, r#"{ name = "p3" }"#);
        assert!(parse(&text)
            .unwrap_err()
            .contains("port p3: interface is not on any link"));
        let text = TWO.replace("ns2:eth0", "nsX:eth0");
        assert!(parse(&text)
            .unwrap_err()
            .contains("no host or bridge namespace named nsX"));
    }

    #[test]
    fn ranges_and_asymmetric_pvid() {
        let text = TWO.replace(
            r#"{ name = "p2" }"#,
            r#"{ name = "p2", vlans = [{ vid = "100-102", untagged = true }], pvid = 30 }"#,
        );
        let topology = parse(&text).unwrap();
        let port = &topology.bridges[0].config.ports[1];
        assert_eq!(port.vlans.iter().count(), 3);
        assert_eq!(port.pvid.map(Vid::get), Some(30));
        assert!(!port.vlans.contains(30));
        assert!(topology.uses_vlans());
    }
}
