//! `xbridge topo up|down`: turns a `Topology` into the `ip`/`bridge`/`ethtool`
//! commands people type by hand, runs them (or prints them), and removes
//! exactly what it made. Namespaces it creates are marked under
//! `/run/xbridge/netns/`, so `down` never deletes someone else's.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use crate::config::{Accept, EgressMode, PortKind};
use crate::sys::netns;
use crate::topology::{BridgeSpec, Topology};

/// Where ownership markers live.
const MARKER_DIR: &str = "/run/xbridge/netns";

/// Which bridge implementation `topo up` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Namespaces and veths only; `xbridge run` is the bridge.
    Xbridge,
    /// A Linux bridge with the same ports and VLANs (the baseline).
    Kernel,
}

/// One command of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

fn step(program: &'static str, args: &[&str]) -> Step {
    Step {
        program,
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// What `topo up` will do: the commands and what it could not express.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Differences between what the file asks and what the backend builds.
    pub notes: Vec<String>,
}

/// What the running kernel can do for the kernel backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KernelCaps {
    pub bridge: bool,
    pub vlan_filtering: bool,
    pub vlan_subinterfaces: bool,
}

impl KernelCaps {
    /// What a stock distribution kernel has.
    pub const FULL: KernelCaps = KernelCaps {
        bridge: true,
        vlan_filtering: true,
        vlan_subinterfaces: true,
    };
}

/// Why a topology could not be brought up or down.
#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    #[error("`{program}` is not installed; {hint}")]
    MissingTool {
        program: &'static str,
        hint: &'static str,
    },
    #[error("network namespace {0} already exists (is this topology up already? `xbridge topo down FILE` removes it)")]
    NamespaceExists(String),
    #[error("the kernel bridge backend cannot build {file}: {reason}")]
    KernelCannot { file: PathBuf, reason: String },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot mark namespace {namespace} as ours: {source}")]
    Marker {
        namespace: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where `program` is on PATH, if it is.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// Checks a tool is on PATH.
pub fn require_tool(program: &'static str, hint: &'static str) -> Result<(), TopoError> {
    if find_on_path(program).is_some() {
        Ok(())
    } else {
        Err(TopoError::MissingTool { program, hint })
    }
}

fn run_step(step: &Step) -> Result<(), TopoError> {
    let output = Command::new(step.program)
        .args(&step.args)
        .output()
        .map_err(|err| TopoError::Command {
            command: step.to_string(),
            stderr: err.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TopoError::Command {
            command: step.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Probes the kernel in a scratch namespace that is removed afterwards.
pub fn kernel_caps() -> KernelCaps {
    let scratch = format!("xbridge-probe-{}", std::process::id());
    let quiet = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !quiet(&["netns", "add", &scratch]) {
        return KernelCaps {
            bridge: false,
            vlan_filtering: false,
            vlan_subinterfaces: false,
        };
    }
    let bridge = quiet(&["-n", &scratch, "link", "add", "xbprobe0", "type", "bridge"]);
    let vlan_filtering = bridge
        && quiet(&[
            "-n",
            &scratch,
            "link",
            "set",
            "xbprobe0",
            "type",
            "bridge",
            "vlan_filtering",
            "1",
        ])
        && std::process::Command::new("ip")
            .args(["-n", &scratch, "-d", "link", "show", "xbprobe0"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("vlan_filtering 1"))
            .unwrap_or(false);
    let vlan_subinterfaces = quiet(&[
        "-n", &scratch, "link", "add", "xbprobe1", "type", "veth", "peer", "name", "xbprobe2",
    ]) && quiet(&[
        "-n",
        &scratch,
        "link",
        "add",
        "link",
        "xbprobe1",
        "name",
        "xbprobe1.10",
        "type",
        "vlan",
        "id",
        "10",
    ]);
    quiet(&["netns", "del", &scratch]);
    KernelCaps {
        bridge,
        vlan_filtering,
        vlan_subinterfaces,
    }
}

/// Why the kernel backend cannot build `topology` on a kernel with `caps`.
pub fn kernel_refusal(topology: &Topology, caps: &KernelCaps) -> Option<String> {
    if !caps.bridge {
        return Some("this kernel has no bridge support (CONFIG_BRIDGE)".into());
    }
    if topology.uses_vlans() && !caps.vlan_filtering {
        return Some(
            "it uses VLANs and this kernel's bridge has no vlan_filtering (CONFIG_BRIDGE_VLAN_FILTERING); \
             an untagged baseline is all this kernel can give"
                .into(),
        );
    }
    let has_sub_interfaces = topology.bridges.iter().any(|b| {
        b.config
            .ports
            .iter()
            .any(|p| matches!(p.kind, PortKind::SubInterface { .. }))
    });
    if has_sub_interfaces && !caps.vlan_subinterfaces {
        return Some("it has sub-interface ports and this kernel has no 8021q module".into());
    }
    None
}

/// The commands that build `topology` with `backend`.
/// `caps` matters only to the kernel backend.
pub fn plan_up(topology: &Topology, backend: Backend, caps: &KernelCaps) -> Plan {
    let mut plan = Plan::default();
    for namespace in topology.namespaces() {
        plan.steps.push(step("ip", &["netns", "add", &namespace]));
        plan.steps
            .push(step("ip", &["-n", &namespace, "link", "set", "lo", "up"]));
    }
    for link in &topology.links {
        let [a, b] = &link.ends;
        let queues = link.queues.to_string();
        let mut args = vec!["link", "add", "name", &a.interface, "netns", &a.namespace];
        if link.queues > 1 {
            args.extend(["numtxqueues", &queues, "numrxqueues", &queues]);
        }
        args.extend([
            "type",
            "veth",
            "peer",
            "name",
            &b.interface,
            "netns",
            &b.namespace,
        ]);
        if link.queues > 1 {
            args.extend(["numtxqueues", &queues, "numrxqueues", &queues]);
        }
        plan.steps.push(step("ip", &args));
    }
    for host in &topology.hosts {
        for interface in &host.interfaces {
            let (ns, name) = (host.name.as_str(), interface.name.as_str());
            if let Some(mac) = interface.mac {
                plan.steps.push(step(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "link",
                        "set",
                        "dev",
                        name,
                        "address",
                        &mac.to_string(),
                    ],
                ));
            }
            for address in &interface.addresses {
                plan.steps.push(step(
                    "ip",
                    &["-n", ns, "addr", "add", &address.to_string(), "dev", name],
                ));
            }
            // VLAN offload would hide tags from XDP and AF_PACKET; TCP
            // through AF_XDP needs checksums filled in by the sender.
            plan.steps.push(step(
                "ip",
                &[
                    "netns", "exec", ns, "ethtool", "-K", name, "rxvlan", "off", "txvlan", "off",
                    "tx", "off",
                ],
            ));
            plan.steps
                .push(step("ip", &["-n", ns, "link", "set", "dev", name, "up"]));
        }
    }
    for bridge in &topology.bridges {
        let ns = bridge.namespace.as_str();
        for link in &topology.links {
            for end in link.ends.iter().filter(|end| end.namespace == ns) {
                plan.steps.push(step(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        ns,
                        "ethtool",
                        "-K",
                        &end.interface,
                        "rxvlan",
                        "off",
                        "txvlan",
                        "off",
                    ],
                ));
                plan.steps.push(step(
                    "ip",
                    &["-n", ns, "link", "set", "dev", &end.interface, "up"],
                ));
            }
        }
        if backend == Backend::Kernel {
            plan_kernel_bridge(bridge, caps, &mut plan);
        } else {
            // A stray host-side link end in the bridge namespace is fine; the
            // dataplane attaches to the port interfaces only.
        }
    }
    plan
}

fn plan_kernel_bridge(bridge: &BridgeSpec, caps: &KernelCaps, plan: &mut Plan) {
    let ns = bridge.namespace.as_str();
    let mut config = bridge.config.clone();
    let name = bridge.config.name.as_str();
    if config.vlan_filtering && !caps.vlan_filtering {
        // Only reachable for bridges whose ports are all VLAN 1, PVID,
        // untagged (kernel_refusal stops the rest): for untagged frames an
        // unfiltered bridge forwards the same way.
        plan.notes.push(format!(
            "bridge {name}: this kernel has no bridge vlan_filtering; built unfiltered, which forwards \
             untagged frames the same way (tagged frames would not be filtered)"
        ));
        config.vlan_filtering = false;
    }
    let config = &config;
    let ageing = (config.ageing_time.as_millis() / 10).to_string();
    let mut args = vec![
        "-n",
        ns,
        "link",
        "add",
        "name",
        name,
        "type",
        "bridge",
        "ageing_time",
        &ageing,
    ];
    if config.vlan_filtering {
        // Only when enabling it: kernels without CONFIG_BRIDGE_VLAN_FILTERING
        // refuse the attribute even as 0.
        args.extend(["vlan_filtering", "1", "vlan_default_pvid", "0"]);
    }
    plan.steps.push(step("ip", &args));
    for port in &config.ports {
        let dev = port.name.as_str();
        if let PortKind::SubInterface { wire_vid } = port.kind {
            plan.steps.push(step(
                "ip",
                &[
                    "-n",
                    ns,
                    "link",
                    "add",
                    "link",
                    &port.interface,
                    "name",
                    dev,
                    "type",
                    "vlan",
                    "id",
                    &wire_vid.to_string(),
                ],
            ));
            plan.steps
                .push(step("ip", &["-n", ns, "link", "set", "dev", dev, "up"]));
        }
        plan.steps.push(step(
            "ip",
            &["-n", ns, "link", "set", "dev", dev, "master", name],
        ));
        if config.vlan_filtering {
            for (vid, mode) in port.vlans.iter() {
                let vid_text = vid.to_string();
                let mut args = vec!["-n", ns, "vlan", "add", "dev", dev, "vid", &vid_text];
                if port.pvid == Some(vid) {
                    args.push("pvid");
                }
                if mode == EgressMode::Untagged {
                    args.push("untagged");
                }
                plan.steps.push(step("bridge", &args));
            }
            if let Some(pvid) = port.pvid.filter(|pvid| !port.vlans.contains(pvid.get())) {
                plan.notes.push(format!(
                    "port {dev}: Linux has no PVID outside the member set; VLAN {pvid} becomes an untagged member \
                     there, so frames of VLAN {pvid} can leave {dev} on the kernel bridge (xbridge: they cannot)"
                ));
                plan.steps.push(step(
                    "bridge",
                    &[
                        "-n",
                        ns,
                        "vlan",
                        "add",
                        "dev",
                        dev,
                        "vid",
                        &pvid.to_string(),
                        "pvid",
                        "untagged",
                    ],
                ));
            }
            if port.accept != Accept::All {
                plan.notes.push(format!(
                    "port {dev}: `accept` has no Linux bridge equivalent; the kernel bridge admits all frame types"
                ));
            }
        }
        let flags = port.flags;
        let on_off = |value: bool| if value { "on" } else { "off" };
        plan.steps.push(step(
            "bridge",
            &[
                "-n",
                ns,
                "link",
                "set",
                "dev",
                dev,
                "learning",
                on_off(flags.learning),
                "flood",
                on_off(flags.flood),
                "mcast_flood",
                on_off(flags.mcast_flood),
                "bcast_flood",
                on_off(flags.bcast_flood),
                "isolated",
                on_off(flags.isolated),
            ],
        ));
        if flags.fdb_max_learned != 0 {
            plan.notes.push(format!(
                "port {dev}: fdb_max_learned is not applied to the kernel bridge"
            ));
        }
    }
    for entry in &config.static_fdb {
        let port = &config.ports[entry.port.index()].name;
        let mac = entry.mac.to_string();
        let vid = entry.vid.map(|vid| vid.to_string());
        let mut args = vec![
            "-n", ns, "fdb", "add", &mac, "dev", port, "master", "static",
        ];
        if let (true, Some(vid)) = (config.vlan_filtering, vid.as_deref()) {
            args.extend(["vlan", vid]);
        }
        plan.steps.push(step("bridge", &args));
    }
    plan.steps
        .push(step("ip", &["-n", ns, "link", "set", "dev", name, "up"]));
}

/// The commands that remove `topology`: deleting its namespaces removes
/// their veths and bridges with them.
pub fn plan_down(topology: &Topology) -> Plan {
    let mut plan = Plan::default();
    for namespace in topology.namespaces() {
        plan.steps.push(step("ip", &["netns", "del", &namespace]));
    }
    plan
}

fn marker(namespace: &str) -> PathBuf {
    PathBuf::from(MARKER_DIR).join(namespace)
}

fn mark(namespace: &str) -> Result<(), TopoError> {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(MARKER_DIR)?;
        std::fs::write(marker(namespace), format!("{}\n", std::process::id()))
    };
    write().map_err(|source| TopoError::Marker {
        namespace: namespace.to_string(),
        source,
    })
}

/// Checks the tools, the kernel and that nothing is in the way, then runs
/// the plan. On any failure it removes what it created and returns the error.
pub fn up(topology: &Topology, backend: Backend) -> Result<Plan, TopoError> {
    require_tool("ip", "install iproute2 (apt-get install iproute2)")?;
    require_tool(
        "ethtool",
        "install it (apt-get install ethtool) or run ./setup",
    )?;
    let caps = if backend == Backend::Kernel {
        require_tool("bridge", "install iproute2 (apt-get install iproute2)")?;
        let caps = kernel_caps();
        if let Some(reason) = kernel_refusal(topology, &caps) {
            return Err(TopoError::KernelCannot {
                file: topology.path.clone(),
                reason,
            });
        }
        caps
    } else {
        KernelCaps::FULL
    };
    if let Some(existing) = topology
        .namespaces()
        .into_iter()
        .find(|ns| netns::exists(ns))
    {
        return Err(TopoError::NamespaceExists(existing));
    }
    let plan = plan_up(topology, backend, &caps);
    let mut created = Vec::new();
    let result = (|| {
        for step in &plan.steps {
            run_step(step)?;
            if step.args.first().map(String::as_str) == Some("netns")
                && step.args.get(1).map(String::as_str) == Some("add")
            {
                let namespace = step.args[2].clone();
                created.push(namespace.clone());
                mark(&namespace)?;
            }
        }
        Ok(())
    })();
    if let Err(err) = result {
        for namespace in created.iter().rev() {
            let _ = run_step(&step("ip", &["netns", "del", namespace]));
            let _ = std::fs::remove_file(marker(namespace));
        }
        return Err(err);
    }
    Ok(plan)
}

/// What `down` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct DownReport {
    pub removed: Vec<String>,
    /// Namespaces of the file that exist but were not made by xbridge.
    pub not_ours: Vec<String>,
    pub absent: Vec<String>,
}

/// Deletes the topology's namespaces that xbridge made; leaves others alone.
pub fn down(topology: &Topology) -> Result<DownReport, TopoError> {
    require_tool("ip", "install iproute2 (apt-get install iproute2)")?;
    let mut report = DownReport::default();
    for namespace in topology.namespaces() {
        if !netns::exists(&namespace) {
            let _ = std::fs::remove_file(marker(&namespace));
            report.absent.push(namespace);
            continue;
        }
        if !marker(&namespace).exists() {
            report.not_ours.push(namespace);
            continue;
        }
        run_step(&step("ip", &["netns", "del", &namespace]))?;
        let _ = std::fs::remove_file(marker(&namespace));
        report.removed.push(namespace);
    }
    // State a killed `xbridge run` could not remove.
    for bridge in &topology.bridges {
        let name = &bridge.config.name;
        if crate::runtime::running_pid(name).is_none() {
            let _ = std::fs::remove_file(crate::runtime::pid_path(name));
            let _ = std::fs::remove_file(crate::runtime::stats_path(name));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn topology(text: &str) -> Topology {
        Topology::parse(Path::new("t.toml"), text).unwrap()
    }

    const VLANS: &str = r#"
[[hosts]]
name = "h1"
interfaces = [{ name = "eth0", addresses = ["192.168.50.1/24"], mac = "02:00:00:00:00:01" }]
[[bridges]]
name = "br0"
namespace = "brns"
ports = [
  { name = "p1", vlans = [{ vid = 10, pvid = true, untagged = true }], accept = "untagged" },
  { name = "t.20", vlans = [{ vid = 10 }], pvid = 30, learning = false },
]
fdb = [{ mac = "02:00:00:00:00:09", port = "p1", vlan = 10 }]
[[links]]
a = "h1:eth0"
b = "brns:p1"
[[links]]
a = "x:eth0"
b = "brns:t"
queues = 2
[[hosts]]
name = "x"
interfaces = [{ name = "eth0" }]
"#;

    #[test]
    fn the_plan_reads_like_the_articles_listings() {
        let plan = plan_up(&topology(VLANS), Backend::Kernel, &KernelCaps::FULL);
        let lines: Vec<String> = plan.steps.iter().map(|s| s.to_string()).collect();
        for expected in [
            "ip netns add h1",
            "ip netns add brns",
            "ip link add name eth0 netns h1 type veth peer name p1 netns brns",
            "ip link add name eth0 netns x numtxqueues 2 numrxqueues 2 type veth peer name t netns brns numtxqueues 2 numrxqueues 2",
            "ip -n h1 link set dev eth0 address 02:00:00:00:00:01",
            "ip -n h1 addr add 192.168.50.1/24 dev eth0",
            "ip netns exec h1 ethtool -K eth0 rxvlan off txvlan off tx off",
            "ip -n brns link add name br0 type bridge ageing_time 30000 vlan_filtering 1 vlan_default_pvid 0",
            "ip -n brns link add link t name t.20 type vlan id 20",
            "ip -n brns link set dev t.20 master br0",
            "bridge -n brns vlan add dev p1 vid 10 pvid untagged",
            "bridge -n brns vlan add dev t.20 vid 10",
            "bridge -n brns vlan add dev t.20 vid 30 pvid untagged",
            "bridge -n brns fdb add 02:00:00:00:00:09 dev p1 master static vlan 10",
            "ip -n brns link set dev br0 up",
        ] {
            assert!(lines.contains(&expected.to_string()), "missing `{expected}` in\n{}", lines.join("\n"));
        }
        assert!(lines.iter().any(|l| l.contains("dev t.20 learning off")));
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
    }

    #[test]
    fn the_xbridge_backend_builds_no_kernel_bridge() {
        let plan = plan_up(&topology(VLANS), Backend::Xbridge, &KernelCaps::FULL);
        assert!(plan.steps.iter().all(|s| s.program != "bridge"));
        assert!(!plan
            .steps
            .iter()
            .any(|s| s.to_string().contains("type bridge")));
    }

    #[test]
    fn a_kernel_without_vlan_filtering_refuses_vlan_topologies() {
        let caps = KernelCaps {
            bridge: true,
            vlan_filtering: false,
            vlan_subinterfaces: false,
        };
        assert!(kernel_refusal(&topology(VLANS), &caps)
            .unwrap()
            .contains("vlan_filtering"));
    }

    #[test]
    fn down_deletes_every_namespace() {
        let lines: Vec<String> = plan_down(&topology(VLANS))
            .steps
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            lines,
            ["ip netns del h1", "ip netns del x", "ip netns del brns"]
        );
    }
}
