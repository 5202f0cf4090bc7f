//! The oracle's long mode: the same scenarios through the real xbridge
//! dataplane (AF_XDP on veths in namespaces on this host), so the kernel can
//! be compared with what xbridge really does, not only with its pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::conformance::{fdb_rows, Emitted, EmittedHex, Outcome, Scenario};
use crate::runtime::Running;
use crate::sys::netns;
use crate::sys::packet::PacketSocket;
use crate::topo::{self, Backend};
use crate::topology::{BridgeSpec, Endpoint, Host, HostInterface, Link, Topology};

/// After the last copy of a frame, how long the ports must stay silent.
const QUIET: Duration = Duration::from_millis(60);
/// The most a frame may take to come out.
const LONGEST: Duration = Duration::from_millis(600);
/// Bytes at the end of a frame that identify it (its payload's marker):
/// X1 keeps everything after the tags.
const TAIL: usize = 24;

/// Why the long mode could not run a scenario.
#[derive(Debug, thiserror::Error)]
pub enum HostRunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Topo(#[from] crate::topo::TopoError),
    #[error(transparent)]
    Run(#[from] crate::runtime::RunError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The namespaces of one scenario: a host per bridge interface, joined by a
/// veth pair to that interface in the bridge's namespace.
fn topology(scenario: &Scenario, prefix: &str) -> Result<Topology, HostRunError> {
    let interfaces = scenario.interfaces();
    let topology = Topology {
        path: PathBuf::from(format!("conformance:{}", scenario.name)),
        hosts: interfaces
            .iter()
            .map(|i| Host {
                name: format!("h{i}"),
                interfaces: vec![HostInterface {
                    name: "eth0".into(),
                    addresses: vec![],
                    mac: None,
                }],
            })
            .collect(),
        bridges: vec![BridgeSpec {
            namespace: "xcbr".into(),
            config: crate::config::BridgeConfig {
                // A device-name-sized name; the scenario's may be long.
                name: "cb".into(),
                ..scenario.bridge_config()?
            },
        }],
        links: interfaces
            .iter()
            .map(|i| Link {
                ends: [
                    Endpoint {
                        namespace: format!("h{i}"),
                        interface: "eth0".into(),
                    },
                    Endpoint {
                        namespace: "xcbr".into(),
                        interface: i.clone(),
                    },
                ],
                queues: 1,
            })
            .collect(),
    };
    topology.with_prefix(prefix).map_err(|e| HostRunError::Io {
        what: "prefix".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Runs `scenario` through the real dataplane and reports what each
/// interface emitted for each frame, and the FDB at the end.
pub fn run_scenario(scenario: &Scenario, prefix: &str) -> Result<Outcome, HostRunError> {
    let topology = topology(scenario, prefix)?;
    let _ = topo::down(&topology);
    topo::up(&topology, Backend::Xbridge)?;
    let result = (|| {
        let running = Running::start(&topology.bridges, 1, &[0])?;
        let sockets: BTreeMap<String, PacketSocket> = scenario
            .interfaces()
            .into_iter()
            .map(|interface| {
                let namespace = format!("{prefix}h{interface}");
                let socket =
                    netns::within(&namespace, || PacketSocket::open("eth0")).map_err(|source| {
                        HostRunError::Io {
                            what: format!("packet socket in {namespace}"),
                            source,
                        }
                    })?;
                Ok((interface, socket))
            })
            .collect::<Result<_, HostRunError>>()?;
        let mut frames = Vec::new();
        for frame in &scenario.frames {
            for socket in sockets.values() {
                socket.drain();
            }
            sockets[&frame.interface]
                .send(&frame.bytes)
                .map_err(|source| HostRunError::Io {
                    what: "send".into(),
                    source,
                })?;
            let tail = &frame.bytes[frame.bytes.len().saturating_sub(TAIL)..];
            let mut emitted = Emitted::new();
            let started = Instant::now();
            let mut last = Instant::now();
            while last.elapsed() < QUIET && started.elapsed() < LONGEST {
                for (interface, socket) in &sockets {
                    while let Ok(Some(got)) = socket.receive(Duration::from_millis(2)) {
                        if got.bytes.ends_with(tail) {
                            emitted
                                .entry(interface.clone())
                                .or_default()
                                .push(got.bytes);
                            last = Instant::now();
                        }
                    }
                }
            }
            for list in emitted.values_mut() {
                list.sort();
            }
            frames.push(EmittedHex::from(&emitted));
        }
        let bridge = &running.bridges()[0];
        let fdb = fdb_rows(bridge.fdb(), bridge.pipeline().config());
        running.stop();
        Ok(Outcome {
            scenario: scenario.name.clone(),
            frames,
            fdb,
        })
    })();
    let _ = topo::down(&topology);
    result
}
