//! Decisions per second of the I/O-free pipeline and the FDB: with 10 and
//! with 1,000,000 FDB entries, and with ports carrying all 4094 VLANs.
//! `cargo bench -p xbridge --bench pipeline`. Zero allocations per frame are
//! checked by tests/no_alloc.rs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xbridge::config::{BridgeConfig, EgressMode, PortConfig, PortId};
use xbridge::fdb::{Fdb, Millis};
use xbridge::pipeline::{InterfaceId, Pipeline};
use xbridge::wire::{FrameBuilder, MacAddr, Tci};

const FRAMES: usize = 1024;

fn mac(n: u32) -> MacAddr {
    let [a, b, c, d] = n.to_be_bytes();
    MacAddr([2, a, b, c, d, 1])
}

fn bridge(vlans: u16) -> Pipeline {
    let mut ports = Vec::new();
    for name in ["p0", "p1", "p2", "p3"] {
        let mut port = PortConfig::trunk(name).with_pvid(1);
        for vid in 1..=vlans {
            port = port.with_vlan(
                vid,
                if vid == 1 {
                    EgressMode::Untagged
                } else {
                    EgressMode::Tagged
                },
            );
        }
        ports.push(port);
    }
    Pipeline::new(
        BridgeConfig {
            name: "bench".into(),
            vlan_filtering: true,
            ageing_time: Duration::from_secs(300),
            fdb_max_learned: 2_000_000,
            ports,
            static_fdb: vec![],
        }
        .validate()
        .expect("valid"),
    )
}

/// An FDB holding `entries` addresses (VLAN 1) spread over ports 1..3, and
/// frames from port 0 to `FRAMES` of them.
fn known_unicast(entries: u32, vid: u16) -> (Fdb, Vec<Vec<u8>>) {
    let fdb = Fdb::new(2_000_000);
    for n in 0..entries {
        fdb.learn(mac(n), vid, PortId(1 + (n % 3) as u16), Millis(0), 0);
    }
    let step = (entries / FRAMES as u32).max(1);
    let frames = (0..FRAMES as u32)
        .map(|i| {
            let builder =
                FrameBuilder::new(mac((i * step) % entries), MacAddr([2, 0xff, 0, 0, 0, 1]));
            if vid == 1 {
                builder
            } else {
                builder.tag(Tci::new(0, false, vid))
            }
            .build()
        })
        .collect();
    (fdb, frames)
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (label, entries, vlans, vid) in [
        ("fdb 10, 1 vlan", 10u32, 1u16, 1u16),
        ("fdb 1M, 1 vlan", 1_000_000, 1, 1),
        ("fdb 10, 4094 vlans", 10, 4094, 3000),
    ] {
        let pipeline = bridge(vlans);
        let (fdb, frames) = known_unicast(entries, vid);
        group.bench_function(label, |b| {
            b.iter(|| {
                for frame in &frames {
                    black_box(pipeline.decide(InterfaceId(0), black_box(frame), &fdb, Millis(1)));
                }
            })
        });
    }
    let pipeline = bridge(1);
    let fdb = Fdb::new(1024);
    let flood: Vec<Vec<u8>> = (0..FRAMES as u32)
        .map(|i| FrameBuilder::new(MacAddr::BROADCAST, mac(i % 16)).build())
        .collect();
    group.bench_function("broadcast flood, 4 ports", |b| {
        b.iter(|| {
            for frame in &flood {
                black_box(pipeline.decide(InterfaceId(0), black_box(frame), &fdb, Millis(1)));
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fdb");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for entries in [10u32, 1_000_000] {
        let (fdb, _) = known_unicast(entries, 1);
        let step = (entries / FRAMES as u32).max(1);
        group.bench_function(format!("lookup, {entries} entries"), |b| {
            b.iter(|| {
                for i in 0..FRAMES as u32 {
                    black_box(fdb.lookup(mac((i * step) % entries), 1));
                }
            })
        });
        group.bench_function(format!("learn refresh, {entries} entries"), |b| {
            b.iter(|| {
                for i in 0..FRAMES as u32 {
                    let n = (i * step) % entries;
                    black_box(fdb.learn(mac(n), 1, PortId(1 + (n % 3) as u16), Millis(1), 0));
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = decisions
}
criterion_main!(benches);
