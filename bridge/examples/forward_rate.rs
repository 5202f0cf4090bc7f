//! Forwarding rate of `topologies/two-namespaces.toml` with 64-byte frames,
//! on xbridge and on the kernel bridge in the same run: a simple AF_XDP
//! generator in ns1 blasts unicast frames at ns2's MAC for a few seconds;
//! delivered frames are ns2's interface rx counter. A first number for the
//! benchmark work; `xbridge bench` (bench/) will do this properly.
//!
//! Run as root: cargo run --release --example forward_rate [seconds]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xbridge::runtime::Running;
use xbridge::sys::{self, netns, xsk::XskSet};
use xbridge::topo::{self, Backend};
use xbridge::topology::Topology;
use xbridge::wire::{FrameBuilder, MacAddr};

fn counter(namespace: &str, ifname: &str, which: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", namespace, "cat"])
        .arg(format!("/sys/class/net/{ifname}/statistics/{which}"))
        .output()
        .expect("reading a counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn mac_of(namespace: &str, ifname: &str) -> MacAddr {
    let out = Command::new("ip")
        .args(["netns", "exec", namespace, "cat"])
        .arg(format!("/sys/class/net/{ifname}/address"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Sends 60-byte frames (64 on the wire with FCS) from `namespace`:`ifname`
/// until `stop`; returns frames queued.
fn generate(namespace: String, ifname: String, frame: Vec<u8>, stop: Arc<AtomicBool>) -> u64 {
    netns::enter(&namespace).unwrap();
    core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
    let ifindex = sys::if_index(&ifname).unwrap();
    let mut xsk = XskSet::open(&[(ifname, ifindex, 0)]).unwrap();
    let mut batch = Vec::with_capacity(64);
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        xsk.reap_completions(0);
        batch.clear();
        while batch.len() < 64 {
            let Some(chunk) = xsk.take_free() else { break };
            let desc = xbridge::sys::xsk::Desc {
                addr: chunk + 256,
                len: frame.len() as u32,
            };
            xsk.frame_mut(desc)[256..256 + frame.len()].copy_from_slice(&frame);
            batch.push(desc);
        }
        sent += xsk.transmit(0, &batch) as u64;
    }
    sent
}

struct Sample {
    offered_pps: f64,
    delivered_pps: f64,
}

fn measure(topology: &Topology, seconds: u64) -> Sample {
    let (ns1, ns2) = (
        topology.hosts[0].name.clone(),
        topology.hosts[1].name.clone(),
    );
    // Let the bridge learn ns2's MAC: one ping each way.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns1,
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            "192.168.50.2",
        ])
        .output();
    let frame = FrameBuilder::new(mac_of(&ns2, "eth0"), mac_of(&ns1, "eth0"))
        .payload(&[0u8; 46])
        .build();
    assert_eq!(frame.len(), 60);
    let before = counter(&ns2, "eth0", "rx_packets");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let generator = {
        let stop = stop.clone();
        std::thread::spawn(move || generate(ns1, "eth0".into(), frame, stop))
    };
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let sent = generator.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let delivered = counter(&ns2, "eth0", "rx_packets") - before;
    Sample {
        offered_pps: sent as f64 / elapsed,
        delivered_pps: delivered as f64 / elapsed,
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let text = include_str!("../../topologies/two-namespaces.toml");
    let topology =
        Topology::parse(Path::new("two-namespaces.toml"), text)?.with_prefix("xrate-")?;
    let mut results = Vec::new();
    for backend in [Backend::Xbridge, Backend::Kernel] {
        topo::up(&topology, backend)?;
        let running = match backend {
            Backend::Xbridge => Some(Running::start(&topology.bridges, 1, &[0])?),
            Backend::Kernel => None,
        };
        let sample = measure(&topology, seconds);
        let stats = running.map(|r| r.stop());
        topo::down(&topology)?;
        println!(
            "{backend:?}: offered {:.3} Mpps, delivered {:.3} Mpps (64-byte frames, {seconds} s)",
            sample.offered_pps / 1e6,
            sample.delivered_pps / 1e6
        );
        if let Some(stats) = stats {
            let bridge = &stats[0];
            println!(
                "  xbridge counters: p1 rx {} p2 tx {} no_buffer {} tx_ring_full {} xdp_drop_no_socket {}",
                bridge.ports["p1"].rx_frames,
                bridge.ports["p2"].tx_frames,
                bridge.no_buffer,
                bridge.tx_ring_full,
                bridge.ports["p1"].xdp.get("xdp_drop_no_socket").copied().unwrap_or(0)
            );
        }
        results.push(sample.delivered_pps);
    }
    println!(
        "ratio xbridge/kernel delivered: {:.2}",
        results[0] / results[1]
    );
    Ok(())
}
