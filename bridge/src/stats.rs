//! Counters: per-port frames/bytes and drop reasons (spec X2), written by one
//! worker each without locks, summed into serialisable snapshots for users.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::MAX_PORTS;
use crate::pipeline::DropReason;

/// A counter with a single writer: a plain load and store, no locked
/// read-modify-write on the fast path. Readers may see a slightly old value.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One port's counters in one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_frames: Counter,
    pub rx_bytes: Counter,
    pub tx_frames: Counter,
    pub tx_bytes: Counter,
    pub drops: [Counter; DropReason::ALL.len()],
    /// Copies withheld from this port by egress filtering (spec E1).
    pub egress_filtered: Counter,
}

/// One VLAN's counters in one worker (index: the VID; 0 is the shared VLAN
/// of a bridge without VLAN filtering).
#[derive(Debug, Default)]
pub struct VlanCounters {
    pub rx_frames: Counter,
    pub rx_bytes: Counter,
    pub tx_frames: Counter,
    pub tx_bytes: Counter,
}

/// VIDs 0..=4095.
pub const VLAN_SLOTS: usize = 4096;

/// The kernel's AF_XDP socket counters of one interface in one worker
/// (absolute values, refreshed every ~100 ms by the worker).
#[derive(Debug, Default)]
pub struct SocketCounters {
    pub rx_dropped: Counter,
    pub rx_ring_full: Counter,
    pub rx_fill_ring_empty: Counter,
    pub tx_invalid_descs: Counter,
}

impl SocketCounters {
    pub fn set(&self, stats: crate::sys::xsk::SocketStats) {
        for (counter, value) in [
            (&self.rx_dropped, stats.rx_dropped),
            (&self.rx_ring_full, stats.rx_ring_full),
            (&self.rx_fill_ring_empty, stats.rx_fill_ring_empty),
            (&self.tx_invalid_descs, stats.tx_invalid_descs),
        ] {
            counter.0.store(value, Ordering::Relaxed);
        }
    }
}

/// Everything one worker counts. Written only by that worker.
#[derive(Debug)]
pub struct WorkerCounters {
    pub ports: Box<[PortCounters]>,
    /// Per VID (`VLAN_SLOTS` of them).
    pub vlans: Box<[VlanCounters]>,
    /// Per interface (pipeline order), summed over the worker's sockets there.
    pub sockets: Box<[SocketCounters]>,
    /// Frames no port owned (spec: sub-interface ports, `no_port`).
    pub no_port: Counter,
    /// A copy or an edit needed a free frame or headroom and had none.
    pub no_buffer: Counter,
    /// The TX ring of the egress interface was full.
    pub tx_ring_full: Counter,
    pub batches: Counter,
}

impl WorkerCounters {
    pub fn new(ports: usize, interfaces: usize) -> WorkerCounters {
        WorkerCounters {
            ports: (0..ports.min(MAX_PORTS))
                .map(|_| PortCounters::default())
                .collect(),
            vlans: (0..VLAN_SLOTS).map(|_| VlanCounters::default()).collect(),
            sockets: (0..interfaces).map(|_| SocketCounters::default()).collect(),
            no_port: Counter::default(),
            no_buffer: Counter::default(),
            tx_ring_full: Counter::default(),
            batches: Counter::default(),
        }
    }
}

/// One port's totals, as shown to users and scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub egress_filter: u64,
    /// Drop reason name -> frames (spec X2); only non-zero reasons.
    pub drops: BTreeMap<String, u64>,
    /// The XDP program's counters for the port's interface.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xdp: BTreeMap<String, u64>,
    /// The kernel's AF_XDP socket counters for the port's interface.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xsk: BTreeMap<String, u64>,
}

/// One VLAN's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
}

/// A bridge's totals over all workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStats {
    /// Version of this JSON layout.
    pub schema: u32,
    pub bridge: String,
    pub workers: usize,
    pub ports: BTreeMap<String, PortStats>,
    /// VID -> totals, VLANs with traffic only (0: no VLAN filtering).
    #[serde(default)]
    pub vlans: BTreeMap<u16, VlanStats>,
    pub no_port: u64,
    pub no_buffer: u64,
    pub tx_ring_full: u64,
    pub fdb_entries: u32,
    pub fdb_moves: u64,
    pub learn_limit: u64,
}

/// 2: per-VLAN counters (`vlans`).
pub const STATS_SCHEMA: u32 = 2;

impl BridgeStats {
    /// Sums `workers` for ports named `port_names` (in port order).
    pub fn collect(
        bridge: &str,
        port_names: &[String],
        workers: &[&WorkerCounters],
    ) -> BridgeStats {
        let mut stats = BridgeStats {
            schema: STATS_SCHEMA,
            bridge: bridge.to_string(),
            workers: workers.len(),
            ..BridgeStats::default()
        };
        for (index, name) in port_names.iter().enumerate() {
            let mut port = PortStats::default();
            for worker in workers {
                let counters = &worker.ports[index];
                port.rx_frames += counters.rx_frames.get();
                port.rx_bytes += counters.rx_bytes.get();
                port.tx_frames += counters.tx_frames.get();
                port.tx_bytes += counters.tx_bytes.get();
                port.egress_filter += counters.egress_filtered.get();
                for reason in DropReason::ALL {
                    let count = counters.drops[reason.index()].get();
                    if count > 0 {
                        *port.drops.entry(reason.name().to_string()).or_default() += count;
                    }
                }
            }
            stats.ports.insert(name.clone(), port);
        }
        for vid in 0..VLAN_SLOTS {
            let mut vlan = VlanStats::default();
            for worker in workers {
                let counters = &worker.vlans[vid];
                vlan.rx_frames += counters.rx_frames.get();
                vlan.rx_bytes += counters.rx_bytes.get();
                vlan.tx_frames += counters.tx_frames.get();
                vlan.tx_bytes += counters.tx_bytes.get();
            }
            if vlan != VlanStats::default() {
                stats.vlans.insert(vid as u16, vlan);
            }
        }
        for worker in workers {
            stats.no_port += worker.no_port.get();
            stats.no_buffer += worker.no_buffer.get();
            stats.tx_ring_full += worker.tx_ring_full.get();
        }
        stats
    }
}
