//! The benchmark report: a versioned, documented JSON document (schema in
//! `bench/README.md`) and the table people read.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::rfc2544::Trial;
use crate::stats::{pair_ratios, spread, Spread};

/// The schema identifier; bump on any incompatible change.
pub const SCHEMA: &str = "xbridge-bench/1";

/// Latency percentiles, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
}

/// One measured trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub seconds: f64,
    pub sent: u64,
    /// Distinct benchmark frames the sink received.
    pub received: u64,
    pub offered_mpps: f64,
    pub delivered_mpps: f64,
    pub offered_gbps: f64,
    pub delivered_gbps: f64,
    pub loss_pct: f64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Busy share of each core over the trial, 0..=100.
    pub cpu_busy_pct: Vec<f64>,
    /// Busy nanoseconds of all cores divided by delivered frames.
    pub cpu_ns_per_packet: f64,
    pub latency: Option<Latency>,
}

/// One backend, case and frame size over all pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// "untagged" or "vlan".
    pub case: String,
    /// "xbridge" or "kernel".
    pub backend: String,
    /// Frame size on the wire, FCS included (the frame is 4 bytes shorter).
    pub frame_size: usize,
    pub offered_mpps: Spread,
    pub delivered_mpps: Spread,
    pub delivered_gbps: Spread,
    pub loss_pct: Spread,
    pub cpu_ns_per_packet: Spread,
    pub trials: Vec<Measurement>,
}

impl CaseResult {
    /// Summarises `trials` (one per pair); `None` if there are none.
    pub fn new(
        case: &str,
        backend: &str,
        frame_size: usize,
        trials: Vec<Measurement>,
    ) -> Option<CaseResult> {
        let figure =
            |get: fn(&Measurement) -> f64| spread(&trials.iter().map(get).collect::<Vec<_>>());
        Some(CaseResult {
            case: case.to_string(),
            backend: backend.to_string(),
            frame_size,
            offered_mpps: figure(|m| m.offered_mpps)?,
            delivered_mpps: figure(|m| m.delivered_mpps)?,
            delivered_gbps: figure(|m| m.delivered_gbps)?,
            loss_pct: figure(|m| m.loss_pct)?,
            cpu_ns_per_packet: figure(|m| m.cpu_ns_per_packet)?,
            trials,
        })
    }
}

/// A backend that could not be measured for a case, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotMeasured {
    pub case: String,
    pub backend: String,
    pub reason: String,
}

/// xbridge / kernel, pair by pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratios {
    pub delivered_mpps: Spread,
    pub cpu_ns_per_packet: Spread,
}

/// RFC 2544 throughput for one backend, case and size, with latency at 50 %
/// and 90 % of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rfc2544 {
    pub case: String,
    pub backend: String,
    pub frame_size: usize,
    pub throughput_mpps: f64,
    pub trial_seconds: f64,
    pub trials: Vec<Trial>,
    pub latency_at_50pct: Option<Latency>,
    pub latency_at_90pct: Option<Latency>,
}

/// Where each part ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pinning {
    pub generator_cores: Vec<usize>,
    pub xbridge_worker_cores: Vec<usize>,
    pub softirq: String,
}

/// How the run was set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub topology: String,
    pub generator: String,
    pub frame_sizes: Vec<usize>,
    pub pairs: usize,
    pub trial_seconds: f64,
    pub flows: u32,
    pub full: bool,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub kernel: String,
    pub cpus: usize,
    pub config: RunConfig,
    pub pinning: Pinning,
    pub results: Vec<CaseResult>,
    /// Keyed "SIZE" for the untagged case and "vlan-SIZE" for the VLAN case.
    pub ratios: BTreeMap<String, Ratios>,
    pub rfc2544: Vec<Rfc2544>,
    pub not_measured: Vec<NotMeasured>,
    pub notes: Vec<String>,
}

/// The key of `ratios` for a case and size.
pub fn ratio_key(case: &str, frame_size: usize) -> String {
    if case == "untagged" {
        frame_size.to_string()
    } else {
        format!("{case}-{frame_size}")
    }
}

impl Report {
    /// Fills `ratios` from `results`: for every case and size measured on
    /// both backends, xbridge / kernel pair by pair.
    pub fn compute_ratios(&mut self) {
        self.ratios.clear();
        for xbridge in self.results.iter().filter(|r| r.backend == "xbridge") {
            let Some(kernel) = self.results.iter().find(|r| {
                r.backend == "kernel"
                    && r.case == xbridge.case
                    && r.frame_size == xbridge.frame_size
            }) else {
                continue;
            };
            let series = |result: &CaseResult, get: fn(&Measurement) -> f64| -> Vec<f64> {
                result.trials.iter().map(get).collect()
            };
            let delivered = pair_ratios(
                &series(xbridge, |m| m.delivered_mpps),
                &series(kernel, |m| m.delivered_mpps),
            );
            let cpu = pair_ratios(
                &series(xbridge, |m| m.cpu_ns_per_packet),
                &series(kernel, |m| m.cpu_ns_per_packet),
            );
            if let (Some(delivered_mpps), Some(cpu_ns_per_packet)) =
                (spread(&delivered), spread(&cpu))
            {
                self.ratios.insert(
                    ratio_key(&xbridge.case, xbridge.frame_size),
                    Ratios {
                        delivered_mpps,
                        cpu_ns_per_packet,
                    },
                );
            }
        }
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "xbridge bench ({} on kernel {}, {} cpus, {} pairs of {:.0} s trials, {} flows)",
            self.config.generator,
            self.kernel,
            self.cpus,
            self.config.pairs,
            self.config.trial_seconds,
            self.config.flows
        );
        let _ = writeln!(
            out,
            "{:<9}{:>6}  {:<8}{:>10}{:>24}{:>9}{:>8}{:>18}{:>22}",
            "case",
            "size",
            "backend",
            "offer Mpps",
            "delivered Mpps [range]",
            "Gbps",
            "loss %",
            "CPU ns/pkt",
            "lat p50/p99/p99.9 us"
        );
        for result in &self.results {
            let latency = result
                .trials
                .iter()
                .filter_map(|t| t.latency)
                .nth(result.trials.len() / 2)
                .map(|l| {
                    format!(
                        "{:.1}/{:.1}/{:.1}",
                        l.p50_ns as f64 / 1e3,
                        l.p99_ns as f64 / 1e3,
                        l.p999_ns as f64 / 1e3
                    )
                })
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<9}{:>6}  {:<8}{:>10.3}{:>24}{:>9.2}{:>8.2}{:>18}{:>22}",
                result.case,
                result.frame_size,
                result.backend,
                result.offered_mpps.median,
                format!(
                    "{:.3} [{:.3}-{:.3}]",
                    result.delivered_mpps.median,
                    result.delivered_mpps.min,
                    result.delivered_mpps.max
                ),
                result.delivered_gbps.median,
                result.loss_pct.median,
                format!(
                    "{:.0} [{:.0}-{:.0}]",
                    result.cpu_ns_per_packet.median,
                    result.cpu_ns_per_packet.min,
                    result.cpu_ns_per_packet.max
                ),
                latency
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(out, "\nxbridge / kernel, pair by pair: median [min-max]");
            for (key, ratio) in &self.ratios {
                let _ = writeln!(
                    out,
                    "  {:<10} delivered Mpps {:.2}x [{:.2}-{:.2}]   CPU ns/pkt {:.2}x [{:.2}-{:.2}]",
                    key,
                    ratio.delivered_mpps.median,
                    ratio.delivered_mpps.min,
                    ratio.delivered_mpps.max,
                    ratio.cpu_ns_per_packet.median,
                    ratio.cpu_ns_per_packet.min,
                    ratio.cpu_ns_per_packet.max
                );
            }
        }
        if !self.rfc2544.is_empty() {
            let _ = writeln!(
                out,
                "\nRFC 2544 throughput (zero loss, {:.1} s trials):",
                self.rfc2544[0].trial_seconds
            );
            for rfc in &self.rfc2544 {
                let latency = |l: Option<Latency>| {
                    l.map(|l| {
                        format!(
                            "{:.1}/{:.1}/{:.1} us",
                            l.p50_ns as f64 / 1e3,
                            l.p99_ns as f64 / 1e3,
                            l.p999_ns as f64 / 1e3
                        )
                    })
                    .unwrap_or_else(|| "-".into())
                };
                let _ = writeln!(
                    out,
                    "  {:<9}{:>5}  {:<8} {:.3} Mpps ({} trials)  latency at 50%: {}  at 90%: {}",
                    rfc.case,
                    rfc.frame_size,
                    rfc.backend,
                    rfc.throughput_mpps,
                    rfc.trials.len(),
                    latency(rfc.latency_at_50pct),
                    latency(rfc.latency_at_90pct)
                );
            }
        }
        let _ = writeln!(
            out,
            "\npinning: generator on cores {:?}, xbridge workers on cores {:?}, softirq: {}",
            self.pinning.generator_cores, self.pinning.xbridge_worker_cores, self.pinning.softirq
        );
        for missing in &self.not_measured {
            let _ = writeln!(
                out,
                "not measured: {} on {}: {}",
                missing.case, missing.backend, missing.reason
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(delivered: f64, cpu: f64) -> Measurement {
        Measurement {
            seconds: 1.0,
            sent: 100,
            received: 100,
            offered_mpps: delivered,
            delivered_mpps: delivered,
            offered_gbps: 0.0,
            delivered_gbps: 0.0,
            loss_pct: 0.0,
            reordered: 0,
            duplicates: 0,
            cpu_busy_pct: vec![],
            cpu_ns_per_packet: cpu,
            latency: None,
        }
    }

    fn report(results: Vec<CaseResult>) -> Report {
        Report {
            schema: SCHEMA.into(),
            kernel: "test".into(),
            cpus: 2,
            config: RunConfig {
                topology: "built-in".into(),
                generator: "xdp-live-frames".into(),
                frame_sizes: vec![64],
                pairs: 3,
                trial_seconds: 1.0,
                flows: 1,
                full: false,
            },
            pinning: Pinning {
                generator_cores: vec![1],
                xbridge_worker_cores: vec![0],
                softirq: "any".into(),
            },
            results,
            ratios: BTreeMap::new(),
            rfc2544: vec![],
            not_measured: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn ratios_are_pair_by_pair_per_case_and_size() {
        let xbridge = CaseResult::new(
            "untagged",
            "xbridge",
            64,
            vec![
                measurement(2.0, 100.0),
                measurement(4.0, 50.0),
                measurement(3.0, 90.0),
            ],
        )
        .unwrap();
        let kernel = CaseResult::new(
            "untagged",
            "kernel",
            64,
            vec![
                measurement(1.0, 200.0),
                measurement(1.0, 100.0),
                measurement(2.0, 100.0),
            ],
        )
        .unwrap();
        assert_eq!(xbridge.delivered_mpps.median, 3.0);
        let mut report = report(vec![xbridge, kernel]);
        report.compute_ratios();
        let ratio = &report.ratios["64"];
        assert_eq!(ratio.delivered_mpps.median, 2.0);
        assert_eq!(
            (ratio.delivered_mpps.min, ratio.delivered_mpps.max),
            (1.5, 4.0)
        );
        assert_eq!(ratio.cpu_ns_per_packet.median, 0.5);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["ratios"]["64"]["delivered_mpps"]["median"], 2.0);
        assert_eq!(json["results"][0]["delivered_mpps"]["median"], 3.0);
        assert_eq!(json["results"][0]["cpu_ns_per_packet"]["median"], 90.0);
        let table = report.table();
        assert!(
            table.contains("delivered Mpps 2.00x [1.50-4.00]"),
            "{table}"
        );
    }

    #[test]
    fn a_case_without_a_kernel_result_has_no_ratio() {
        let xbridge = CaseResult::new("vlan", "xbridge", 64, vec![measurement(1.0, 1.0)]).unwrap();
        let mut report = report(vec![xbridge]);
        report.compute_ratios();
        assert!(report.ratios.is_empty());
        assert_eq!(ratio_key("vlan", 64), "vlan-64");
    }
}
