//! xbridge against the real Linux bridge, frame by frame: the spec's A-E
//! table, the seed's sub-interface rules and 500 random frames, in a VM
//! running the installed stock kernel. Skips when qemu or the kernel image
//! is missing, unless XBRIDGE_REQUIRE_ORACLE=1 (CI) makes that a failure.

use std::path::Path;

use xbridge::conformance::{self, Emitted};
use xbridge::vm::VmParts;

const SEED: u64 = 2026;

/// The VM tests take turns: two software-emulated VMs and a dataplane on
/// two cores would only make each slower.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
const RANDOM_FRAMES: usize = 500;

fn parts() -> Option<VmParts> {
    match VmParts::find(Path::new(env!("CARGO_BIN_EXE_xbridge-probe"))) {
        Ok(parts) => Some(parts),
        Err(err) => {
            if std::env::var("XBRIDGE_REQUIRE_ORACLE").as_deref() == Ok("1") {
                panic!("conformance oracle unavailable ({err}) and XBRIDGE_REQUIRE_ORACLE=1");
            }
            eprintln!("SKIP conformance: {err} (XBRIDGE_REQUIRE_ORACLE=1 makes this a failure)");
            None
        }
    }
}

fn forwarded(outcomes: &[conformance::Outcome]) -> usize {
    outcomes
        .iter()
        .flat_map(|o| &o.frames)
        .filter(|frame| !frame.0.is_empty())
        .count()
}

// spec: I1-I7, L1-L2, F1-F2, E1-E5 (against the kernel)
#[test]
fn xbridge_agrees_with_the_linux_bridge() {
    let Some(parts) = parts() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut scenarios = vec![
        conformance::reference_scenario(),
        conformance::sub_interface_scenario(),
    ];
    scenarios.extend(conformance::random_scenarios(SEED, RANDOM_FRAMES));
    let (outcomes, accelerator, seconds) =
        xbridge::vm::run(&parts, &scenarios).expect("the VM answers");
    eprintln!("conformance VM: {accelerator}, {seconds:.1} s");
    assert_eq!(outcomes.len(), scenarios.len());

    let summary = conformance::compare_all(&scenarios, &outcomes, |s| s.run_pipeline().unwrap());
    assert_eq!(summary.frames, 11 + 8 + RANDOM_FRAMES);
    assert!(
        summary.mismatches.is_empty(),
        "mismatches (replay with `xbridge conformance --random {RANDOM_FRAMES} --seed {SEED}`): {:#?}",
        summary.mismatches
    );
    assert!(
        summary.fdb_mismatches.is_empty(),
        "FDBs differ: {:#?}",
        summary.fdb_mismatches
    );
    assert!(
        outcomes.iter().any(|o| !o.fdb.is_empty()),
        "the kernel learned something"
    );
    // The A-E table: everything agrees but row 4 at port D (spec I4).
    let reference = conformance::compare_all(&scenarios[..1], &outcomes[..1], |s| {
        s.run_pipeline().unwrap()
    });
    assert_eq!(
        (
            reference.agreements,
            reference.deviations.get("asymmetric-pvid")
        ),
        (10, Some(&1))
    );
    // The comparison is not trivial: many random frames really went somewhere.
    let random_forwarded = forwarded(&outcomes[2..]);
    assert!(
        random_forwarded > RANDOM_FRAMES / 3,
        "only {random_forwarded} random frames were forwarded"
    );
    eprintln!("{random_forwarded} of {RANDOM_FRAMES} random frames were forwarded somewhere");

    // Self-test: deliberately wrong bridges must disagree.
    let without_filtering = conformance::compare_all(&scenarios, &outcomes, |s| {
        s.run_pipeline_with(|config| config.vlan_filtering = false)
            .unwrap()
    });
    assert!(
        without_filtering.mismatches.len() > 20,
        "a bridge without VLAN filtering should mismatch, got {}",
        without_filtering.mismatches.len()
    );
    let drop_everything = conformance::compare_all(&scenarios, &outcomes, |s| {
        vec![Emitted::new(); s.frames.len()]
    });
    assert_eq!(
        drop_everything.mismatches.len(),
        forwarded(&outcomes) - drop_everything.deviations.values().sum::<usize>()
    );
}

// The long mode: the real AF_XDP dataplane on veths against the kernel.
#[test]
fn the_real_dataplane_agrees_with_the_linux_bridge() {
    let Some(parts) = parts() else { return };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !xbridge::runtime::is_root() {
        if std::env::var("XBRIDGE_REQUIRE_PRIV").as_deref() == Ok("1") {
            panic!("the long mode needs root and XBRIDGE_REQUIRE_PRIV=1");
        }
        eprintln!("SKIP the_real_dataplane_agrees_with_the_linux_bridge: not root");
        return;
    }
    let mut scenarios = vec![
        conformance::reference_scenario(),
        conformance::sub_interface_scenario(),
    ];
    scenarios.extend(conformance::random_scenarios(SEED + 1, 100));
    let (kernel, _, _) = xbridge::vm::run(&parts, &scenarios).expect("the VM answers");
    let prefix = format!("xt{:x}-", std::process::id() & 0xfff);
    let ours: Vec<_> = scenarios
        .iter()
        .map(|s| xbridge::conformance_host::run_scenario(s, &prefix).expect("the dataplane runs"))
        .collect();
    let summary = conformance::compare_dataplane(&scenarios, &kernel, &ours);
    assert_eq!(summary.frames, 11 + 8 + 100);
    assert!(summary.mismatches.is_empty(), "{:#?}", summary.mismatches);
    assert!(
        summary.fdb_mismatches.is_empty(),
        "{:#?}",
        summary.fdb_mismatches
    );
    assert_eq!(summary.deviations.get("asymmetric-pvid"), Some(&1));
    // It really forwarded: the dataplane emitted frames for most rows of A-E.
    assert!(ours[0].frames.iter().filter(|f| !f.0.is_empty()).count() >= 8);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&prefix),
        "namespaces left behind"
    );
}
