//! The per-frame work of the fast path (loading the configuration snapshot,
//! decision, egress edits, in-place rewrite, monitor events) allocates
//! nothing: checked with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use xbridge::config::{BridgeConfig, EgressMode, PortConfig};
use xbridge::events::{EventHub, RawEvent};
use xbridge::fdb::{Fdb, LearnOutcome, Millis};
use xbridge::pipeline::{InterfaceId, Pipeline, Verdict};
use xbridge::wire::{self, FrameBuilder, MacAddr, Tci};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn deciding_and_rewriting_frames_allocates_nothing() {
    let config = BridgeConfig {
        name: "br".into(),
        vlan_filtering: true,
        ageing_time: Duration::from_secs(300),
        fdb_max_learned: 100_000,
        ports: vec![
            PortConfig::trunk("a")
                .with_vlan(10, EgressMode::Untagged)
                .with_pvid(10),
            PortConfig::trunk("b")
                .with_vlan(10, EgressMode::Untagged)
                .with_pvid(10),
            PortConfig::named("t.10")
                .unwrap()
                .with_vlan(10, EgressMode::Tagged),
            PortConfig::trunk("e").with_vlan(10, EgressMode::Tagged),
        ],
        static_fdb: vec![],
    }
    .validate()
    .unwrap();
    let fdb = Fdb::new(config.fdb_max_learned);
    // As the dataplane holds it: a snapshot a reload may swap at any time.
    let snapshot = arc_swap::ArcSwap::from_pointee(Pipeline::new(config.clone()));
    snapshot.store(std::sync::Arc::new(Pipeline::new(config)));
    let events = EventHub::new(1);
    events.set_listening(true);
    drop(snapshot.load()); // the thread's first load sets up its slot
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|n| {
            let dst = if n % 4 == 0 {
                MacAddr::BROADCAST
            } else {
                MacAddr([2, 0, 0, 0, 1, n / 2])
            };
            let builder = FrameBuilder::new(dst, MacAddr([2, 0, 0, 0, 1, n]));
            if n % 3 == 0 {
                builder.tag(Tci::new(1, false, 10))
            } else {
                builder
            }
            .build()
        })
        .collect();
    let mut buffer = vec![0u8; 4096];
    let mut copy = vec![0u8; 4096];
    let interfaces = [
        InterfaceId(0),
        InterfaceId(1),
        InterfaceId(2),
        InterfaceId(3),
    ];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut forwarded = 0;
    let mut recorded = 0;
    for round in 0..200u64 {
        let pipeline = snapshot.load();
        for (n, frame) in frames.iter().enumerate() {
            let interface = interfaces[n % 4];
            let decision = pipeline.decide(interface, frame, &fdb, Millis(round));
            if let (Some(LearnOutcome::Learned), Some(port)) = (decision.learn, decision.ingress) {
                let src = MacAddr([2, 0, 0, 0, 1, n as u8]);
                let event = RawEvent::of_learning(LearnOutcome::Learned, src, decision.vid, port);
                events.ring(0).push(event.expect("a learn makes an event"));
                recorded += 1;
            }
            if let Verdict::Forward(forward) = decision.verdict {
                for port in forward.egress.iter() {
                    let edit = pipeline.egress_edit(&forward, port);
                    wire::copy_edited(frame, &edit, &mut copy).unwrap();
                    buffer[256..256 + frame.len()].copy_from_slice(frame);
                    wire::apply_in_place(&mut buffer, 256, frame.len(), &edit).unwrap();
                    forwarded += 1;
                }
            }
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(
        forwarded > 10_000,
        "the loop did real work ({forwarded} copies)"
    );
    assert!(recorded > 0, "learn events were recorded");
    assert_eq!(after - before, 0, "allocations on the per-frame path");
}
