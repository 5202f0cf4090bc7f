//! `xbridge bench`: measures xbridge against the Linux bridge on the same
//! generator -> bridge -> sink topology, following
//! `shared/spec/bench-method.md`: fresh topology per backend and pair, A B A
//! B ..., a live-frames XDP generator, an XDP sink with sequence checks and
//! latency, CPU from /proc/stat. The figures are computed by the pure
//! `xbridge-bench` crate.

use std::io::{IsTerminal, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xbridge_bench::histogram;
use xbridge_bench::report::{
    CaseResult, Latency, Measurement, NotMeasured, Pinning, Report, Rfc2544, RunConfig, SCHEMA,
};
use xbridge_bench::rfc2544::{self, Trial};
use xbridge_ebpf::bench::{Generator, Sink, SinkCounts};

use crate::runtime::Running;
use crate::sys::{self, netns};
use crate::topo::{self, Backend};
use crate::topology::Topology;
use crate::wire::{MacAddr, UdpFrameSpec, FCS_LEN};

/// The default topology: generator -> p1 [bridge] p2 -> sink, untagged.
pub const UNTAGGED_TOPOLOGY: &str = include_str!("../../topologies/bench.toml");
/// The VLAN case: the generator on an access port of VLAN 10, the sink
/// behind a trunk, so xbridge pushes a tag on every frame.
pub const VLAN_TOPOLOGY: &str = include_str!("../../topologies/bench-vlan.toml");

const GENERATOR_HOST: &str = "gen";
const SINK_HOST: &str = "sink";
const ENDPOINT: &str = "eth0";
/// Program runs per BPF_PROG_RUN call (the stop flag is checked between
/// calls; a call takes some tens of milliseconds).
const GENERATOR_CALL: u32 = 1 << 18;
const LIVE_BATCH: u32 = 64;
const BASE_PORT: u16 = 40000;
const PREFIX: &str = "xbench-";

/// Which generator drives the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorKind {
    /// BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (kernel >= 5.18).
    Xdp,
    /// The kernel's pktgen (/proc/net/pktgen), where the kernel has it.
    Pktgen,
}

/// What `xbridge bench` was asked to do.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub topology: Option<PathBuf>,
    pub sizes: Vec<usize>,
    pub pairs: usize,
    pub trial: Duration,
    pub full: bool,
    pub flows: u32,
    pub generator: GeneratorKind,
    pub generator_cores: Vec<usize>,
    pub worker_cores: Vec<usize>,
    pub vlan_case: bool,
    /// Offer this many frames/s in the measured trials instead of
    /// saturating (for sequence checks at a known rate).
    pub rate: Option<f64>,
    /// Run the RFC 2544 search.
    pub rfc2544: bool,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("kernel pktgen is not available here (/proc/net/pktgen is missing: the kernel needs CONFIG_NET_PKTGEN and the pktgen module); use --generator xdp")]
    NoPktgen,
    #[error("topology {path}: {reason}")]
    Topology { path: String, reason: String },
    #[error("interrupted; everything the benchmark made was removed")]
    Interrupted,
    #[error("another xbridge bench is running (pid {0}); they would share namespaces and cores")]
    Busy(u32),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Topo(#[from] crate::topo::TopoError),
    #[error(transparent)]
    Run(#[from] crate::runtime::RunError),
    #[error(transparent)]
    Xdp(#[from] xbridge_ebpf::XdpError),
    #[error(transparent)]
    Parse(#[from] crate::topology::TopologyError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Only one benchmark at a time: `/run/xbridge/bench.lock` holds its pid
/// (not `.pid`: that suffix names running bridges).
struct BenchLock(PathBuf);

impl BenchLock {
    fn take() -> Result<BenchLock, BenchError> {
        let path = Path::new(crate::runtime::RUN_DIR).join("bench.lock");
        std::fs::create_dir_all(crate::runtime::RUN_DIR).map_err(io(crate::runtime::RUN_DIR))?;
        let holder = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|pid| {
                *pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
            });
        if let Some(pid) = holder {
            return Err(BenchError::Busy(pid));
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .map_err(io(path.display().to_string()))?;
        Ok(BenchLock(path))
    }
}

impl Drop for BenchLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Per-core jiffies from /proc/stat: (busy, total).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTimes(Vec<(u64, u64)>);

impl CpuTimes {
    pub fn read() -> std::io::Result<CpuTimes> {
        Ok(CpuTimes::parse(&std::fs::read_to_string("/proc/stat")?))
    }

    /// Parses the `cpuN` lines: busy = all but idle and iowait.
    pub fn parse(text: &str) -> CpuTimes {
        let cores = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .map(|line| {
                let fields: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                let total: u64 = fields.iter().take(8).sum();
                let idle =
                    fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
                (total - idle, total)
            })
            .collect();
        CpuTimes(cores)
    }

    /// Busy share of each core between `self` and `later`, 0..=100, and
    /// the busy nanoseconds of all cores together.
    pub fn busy_since(&self, later: &CpuTimes) -> (Vec<f64>, f64) {
        let ticks_per_second = 100.0; // USER_HZ on Linux
        let mut shares = Vec::new();
        let mut busy_ns = 0.0;
        for ((busy0, total0), (busy1, total1)) in self.0.iter().zip(&later.0) {
            let busy = busy1.saturating_sub(*busy0) as f64;
            let total = total1.saturating_sub(*total0) as f64;
            shares.push(if total > 0.0 {
                100.0 * busy / total
            } else {
                0.0
            });
            busy_ns += busy / ticks_per_second * 1e9;
        }
        (shares, busy_ns)
    }
}

/// The endpoints of a bench topology.
#[derive(Clone, Debug)]
struct Roles {
    topology: Topology,
    generator_ns: String,
    sink_ns: String,
    generator_mac: MacAddr,
    sink_mac: MacAddr,
    /// (namespace, interface) of the bridge port facing the generator: it
    /// receives redirected frames, so it needs XDP or GRO.
    generator_port: (String, String),
}

impl Roles {
    fn new(path: &Path, text: &str) -> Result<Roles, BenchError> {
        let topology = Topology::parse(path, text)?.with_prefix(PREFIX)?;
        let fail = |reason: &str| BenchError::Topology {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let host = |name: &str| {
            topology
                .hosts
                .iter()
                .find(|h| h.name == format!("{PREFIX}{name}"))
                .ok_or_else(|| fail(&format!("a bench topology needs a host named {name:?}")))
        };
        let (generator, sink) = (host(GENERATOR_HOST)?, host(SINK_HOST)?);
        let mac = |host: &crate::topology::Host| {
            host.interfaces
                .iter()
                .find(|i| i.name == ENDPOINT)
                .and_then(|i| i.mac)
                .ok_or_else(|| {
                    fail(&format!(
                        "host {} needs interface {ENDPOINT} with a fixed mac",
                        host.name
                    ))
                })
        };
        if topology.bridges.len() != 1 {
            return Err(fail("a bench topology has exactly one bridge"));
        }
        let generator_port = topology
            .links
            .iter()
            .find_map(|link| {
                let [a, b] = &link.ends;
                if a.namespace == generator.name && a.interface == ENDPOINT {
                    Some((b.namespace.clone(), b.interface.clone()))
                } else if b.namespace == generator.name && b.interface == ENDPOINT {
                    Some((a.namespace.clone(), a.interface.clone()))
                } else {
                    None
                }
            })
            .ok_or_else(|| fail("the generator's eth0 is on no link"))?;
        Ok(Roles {
            generator_ns: generator.name.clone(),
            sink_ns: sink.name.clone(),
            generator_mac: mac(generator)?,
            sink_mac: mac(sink)?,
            generator_port,
            topology,
        })
    }

    fn spec(&self, wire_size: usize) -> UdpFrameSpec {
        UdpFrameSpec {
            dst_mac: self.sink_mac,
            src_mac: self.generator_mac,
            src_ip: Ipv4Addr::new(192, 168, 50, 1),
            dst_ip: Ipv4Addr::new(192, 168, 50, 2),
            src_port: BASE_PORT,
            dst_port: 9,
            wire_size,
        }
    }
}

/// A topology built for one backend; torn down when dropped.
struct Lab<'a> {
    roles: &'a Roles,
    running: Option<Running>,
}

impl<'a> Lab<'a> {
    fn up(
        roles: &'a Roles,
        backend: Backend,
        worker_cores: &[usize],
    ) -> Result<Lab<'a>, BenchError> {
        topo::up(&roles.topology, backend)?;
        let mut lab = Lab {
            roles,
            running: None,
        };
        if backend == Backend::Xbridge {
            lab.running = Some(Running::start(
                &roles.topology.bridges,
                worker_cores.len().max(1),
                worker_cores,
            )?);
        }
        if backend == Backend::Kernel {
            // A pure L2 baseline: no netfilter hooks on bridged frames
            // (br_netfilter is on by default where the module is loaded;
            // leaving it would flatter xbridge).
            for table in ["iptables", "ip6tables", "arptables"] {
                let _ = std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &roles.topology.bridges[0].namespace,
                        "sysctl",
                        "-qw",
                    ])
                    .arg(format!("net.bridge.bridge-nf-call-{table}=0"))
                    .status();
            }
        }
        // A frame redirected into a veth is dropped unless the peer has XDP
        // or GRO: turn GRO on for the generator's bridge port (both
        // backends alike), and check it took.
        let (ns, port) = &roles.generator_port;
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ethtool", "-K", port, "gro", "on"])
            .output()
            .map_err(io("ethtool -K gro on"))?;
        let check = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ethtool", "-k", port])
            .output()
            .map_err(io("ethtool -k"))?;
        let gro_on = String::from_utf8_lossy(&check.stdout).contains("generic-receive-offload: on");
        if !gro_on && backend == Backend::Kernel {
            return Err(BenchError::Io {
                what: format!(
                    "turning GRO on for {port} ({})",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                source: std::io::Error::other("redirected frames would be dropped"),
            });
        }
        Ok(lab)
    }
}

impl Drop for Lab<'_> {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
        let _ = topo::down(&self.roles.topology);
    }
}

/// Reports progress: a bar on a terminal, a line per step otherwise.
#[derive(Debug)]
pub struct ProgressBar {
    total: usize,
    done: usize,
    terminal: bool,
}

impl ProgressBar {
    pub fn new(total: usize) -> ProgressBar {
        ProgressBar {
            total,
            done: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn step(&mut self, label: &str) {
        self.done += 1;
        let width = 30;
        let filled = width * self.done.min(self.total) / self.total.max(1);
        let bar = format!(
            "[{}{}] {}/{}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        if self.terminal {
            eprint!("\r\x1b[2K{bar} {label}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{bar} {label}");
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// What the generator should send.
#[derive(Clone, Debug)]
pub struct GeneratorJob {
    pub namespace: String,
    pub interface: String,
    pub spec: UdpFrameSpec,
    pub kind: GeneratorKind,
    /// Frames per second over all threads; `None`: as fast as it goes.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// One thread per core, pinned.
    pub cores: Vec<usize>,
    pub flows: u32,
}

/// Runs the job's generator until the duration passes or `stop_all` is set.
/// Returns (frames sent, seconds).
pub fn generate(job: &GeneratorJob, stop_all: &AtomicBool) -> Result<(u64, f64), BenchError> {
    match job.kind {
        GeneratorKind::Xdp => generate_live_frames(job, stop_all),
        GeneratorKind::Pktgen => generate_pktgen(job, stop_all),
    }
}

/// The writes that set kernel pktgen up for `job` on thread `core` with
/// `count` frames (0: until stopped): (file under /proc/net/pktgen, line).
pub fn pktgen_script(job: &GeneratorJob, core: usize, count: u64) -> Vec<(String, String)> {
    let spec = &job.spec;
    let device = job.interface.as_str();
    let thread = format!("kpktgend_{core}");
    let mut script = vec![
        (thread.clone(), "rem_device_all".to_string()),
        (thread, format!("add_device {device}")),
    ];
    let mut set = |line: String| script.push((device.to_string(), line));
    set(format!("count {count}"));
    // A veth peer with XDP cannot take shared (cloned) skbs.
    set("clone_skb 0".into());
    set(format!("pkt_size {}", spec.wire_size - FCS_LEN));
    set(format!("dst_mac {}", spec.dst_mac));
    set(format!("src_mac {}", spec.src_mac));
    set(format!("dst {}", spec.dst_ip));
    set(format!("src_min {}", spec.src_ip));
    set(format!("src_max {}", spec.src_ip));
    set(format!("udp_dst_min {}", spec.dst_port));
    set(format!("udp_dst_max {}", spec.dst_port));
    set(format!("udp_src_min {}", spec.src_port));
    set(format!(
        "udp_src_max {}",
        spec.src_port
            .saturating_add((job.flows.max(1) - 1).min(u32::from(u16::MAX)) as u16)
    ));
    match job.rate {
        Some(rate) => set(format!("delay {}", (1e9 / rate) as u64)),
        None => set("delay 0".into()),
    }
    script
}

/// Drives kernel pktgen from a thread in the job's namespace (pktgen is per
/// network namespace, under /proc/thread-self/net/pktgen). One pktgen
/// thread: its frames carry one sequence stream.
fn generate_pktgen(job: &GeneratorJob, stop_all: &AtomicBool) -> Result<(u64, f64), BenchError> {
    if !Path::new("/proc/net/pktgen").exists() {
        return Err(BenchError::NoPktgen);
    }
    let core = job.cores.first().copied().unwrap_or(0);
    let write = |file: &str, line: &str| -> Result<(), BenchError> {
        let path = Path::new("/proc/thread-self/net/pktgen").join(file);
        std::fs::write(&path, format!("{line}\n"))
            .map_err(io(format!("pktgen: `{line}` > {}", path.display())))
    };
    let namespace = job.namespace.clone();
    let script = pktgen_script(job, core, 0);
    let interface = job.interface.clone();
    std::thread::scope(|scope| {
        // pktgen's control files, from a thread inside the namespace.
        let control = scope.spawn(|| -> Result<(u64, f64), BenchError> {
            if !namespace.is_empty() {
                netns::enter(&namespace).map_err(io(format!("entering {namespace}")))?;
            }
            for (file, line) in &script {
                write(file, line)?;
            }
            let started = Instant::now();
            let starter = std::thread::spawn({
                let namespace = namespace.clone();
                move || {
                    if !namespace.is_empty() {
                        let _ = netns::enter(&namespace);
                    }
                    // Blocks until "stop".
                    let _ = std::fs::write("/proc/thread-self/net/pktgen/pgctrl", "start\n");
                }
            });
            let deadline = started + job.duration;
            while Instant::now() < deadline && !stop_all.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            write("pgctrl", "stop")?;
            let _ = starter.join();
            let seconds = started.elapsed().as_secs_f64();
            let status =
                std::fs::read_to_string(Path::new("/proc/thread-self/net/pktgen").join(&interface))
                    .map_err(io("reading pktgen's result"))?;
            let sent = status
                .split_whitespace()
                .skip_while(|word| *word != "pkts-sofar:")
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let _ = write(&format!("kpktgend_{core}"), "rem_device_all");
            Ok((sent, seconds))
        });
        control.join().expect("pktgen control thread")
    })
}

/// Runs the live-frames generator: one pinned thread per core in the job's
/// namespace, until the duration passes or `stop_all` is set.
fn generate_live_frames(
    job: &GeneratorJob,
    stop_all: &AtomicBool,
) -> Result<(u64, f64), BenchError> {
    let (rate, duration, cores, flows) = (job.rate, job.duration, &job.cores, job.flows);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let per_thread_rate = rate.map(|r| r / cores.len() as f64);
    let started = Instant::now();
    let threads: Vec<_> = cores
        .iter()
        .enumerate()
        .map(|(index, core)| {
            let (stop, sent, namespace, interface, frame, core) = (
                stop.clone(),
                sent.clone(),
                job.namespace.clone(),
                job.interface.clone(),
                job.spec.build(),
                *core,
            );
            std::thread::spawn(move || -> Result<(), BenchError> {
                core_affinity::set_for_current(core_affinity::CoreId { id: core });
                if !namespace.is_empty() {
                    netns::enter(&namespace).map_err(io(format!("entering {namespace}")))?;
                }
                let ifindex =
                    sys::if_index(&interface).map_err(io(format!("{namespace}: {interface}")))?;
                let base = BASE_PORT.wrapping_add((index as u32 * flows) as u16);
                let interval_ns = per_thread_rate.map_or(0, |rate| (1e9 / rate) as u64);
                let mut generator = Generator::load(ifindex, flows, base, interval_ns)?;
                // One long BPF_PROG_RUN call after another: each call costs
                // a page pool set-up, so calls are few; the program paces.
                while !stop.load(Ordering::Relaxed) {
                    sys::bpf::run_live_frames(
                        generator.program_fd()?,
                        &frame,
                        GENERATOR_CALL,
                        LIVE_BATCH,
                    )
                    .map_err(io("BPF_PROG_RUN (live frames) on the generator"))?;
                }
                sent.fetch_add(generator.sent()?, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    let deadline = started + duration;
    while Instant::now() < deadline && !stop_all.load(Ordering::Relaxed) {
        std::thread::sleep(
            Duration::from_millis(10).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut first_error = None;
    for thread in threads {
        if let Err(err) = thread.join().expect("generator thread") {
            first_error.get_or_insert(err);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(err) = first_error {
        return Err(err);
    }
    if stop_all.load(Ordering::Relaxed) {
        return Err(BenchError::Interrupted);
    }
    Ok((sent.load(Ordering::Relaxed), seconds))
}

fn latency_of(counts: &SinkCounts) -> Option<Latency> {
    Some(Latency {
        p50_ns: histogram::percentile(&counts.latency, 0.50)?,
        p99_ns: histogram::percentile(&counts.latency, 0.99)?,
        p999_ns: histogram::percentile(&counts.latency, 0.999)?,
    })
}

/// One trial: sink attached fresh, generator run, counts read.
fn trial(
    roles: &Roles,
    options: &BenchOptions,
    wire_size: usize,
    rate: Option<f64>,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<Measurement, BenchError> {
    let sink_ns = roles.sink_ns.clone();
    let sink = netns::within(&sink_ns, || {
        let ifindex = sys::if_index(ENDPOINT)?;
        Sink::attach(ENDPOINT, ifindex).map_err(std::io::Error::other)
    })
    .map_err(io(format!("attaching the sink in {sink_ns}")))?;
    let job = GeneratorJob {
        namespace: roles.generator_ns.clone(),
        interface: ENDPOINT.to_string(),
        spec: roles.spec(wire_size),
        kind: options.generator,
        rate,
        duration,
        cores: options.generator_cores.clone(),
        flows: options.flows,
    };
    let before = CpuTimes::read().map_err(io("/proc/stat"))?;
    let (sent, seconds) = generate(&job, stop)?;
    // Let frames in flight land: until the sink's count stops moving.
    let mut last = sink.counts()?.frames;
    let settle = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(30));
        let now = sink.counts()?.frames;
        if now == last || settle.elapsed() > Duration::from_secs(1) {
            break;
        }
        last = now;
    }
    let after = CpuTimes::read().map_err(io("/proc/stat"))?;
    let counts = sink.counts()?;
    tracing::debug!(
        "trial: sent {sent}, sink saw {} frames ({} foreign), streams {:?}",
        counts.frames,
        counts.foreign,
        counts
            .streams
            .iter()
            .filter(|s| s.received > 0)
            .collect::<Vec<_>>()
    );
    drop(sink);
    let received: u64 = counts.streams.iter().map(|s| s.received).sum();
    let reordered = counts.streams.iter().map(|s| s.reordered).sum();
    let duplicates = counts.streams.iter().map(|s| s.duplicates).sum();
    let (cpu_busy_pct, busy_ns) = before.busy_since(&after);
    let bits = |frames: u64| frames as f64 * (wire_size as f64) * 8.0;
    Ok(Measurement {
        seconds,
        sent,
        received,
        offered_mpps: sent as f64 / seconds / 1e6,
        delivered_mpps: received as f64 / seconds / 1e6,
        offered_gbps: bits(sent) / seconds / 1e9,
        delivered_gbps: bits(received) / seconds / 1e9,
        loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * sent.saturating_sub(received) as f64 / sent as f64
        },
        reordered,
        duplicates,
        cpu_busy_pct,
        cpu_ns_per_packet: if received == 0 {
            f64::INFINITY
        } else {
            busy_ns / received as f64
        },
        latency: latency_of(&counts),
    })
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Xbridge => "xbridge",
        Backend::Kernel => "kernel",
    }
}

/// Runs the benchmark; `stop` (Ctrl-C) ends it early with everything removed.
pub fn run(options: &BenchOptions, stop: &AtomicBool) -> Result<Report, BenchError> {
    if options.generator == GeneratorKind::Pktgen && !Path::new("/proc/net/pktgen").exists() {
        return Err(BenchError::NoPktgen);
    }
    let _lock = BenchLock::take()?;
    let untagged = match &options.topology {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(io(path.display().to_string()))?;
            Roles::new(path, &text)?
        }
        None => Roles::new(Path::new("topologies/bench.toml"), UNTAGGED_TOPOLOGY)?,
    };
    let vlan = Roles::new(Path::new("topologies/bench-vlan.toml"), VLAN_TOPOLOGY)?;
    // Leftovers of an interrupted earlier run (only namespaces xbridge made).
    let _ = topo::down(&untagged.topology);
    let _ = topo::down(&vlan.topology);

    let caps = topo::kernel_caps();
    let kernel_vlan = topo::kernel_refusal(&vlan.topology, &caps);
    let backends = [Backend::Xbridge, Backend::Kernel];
    let rfc_sizes: Vec<usize> = match (options.rfc2544, options.full) {
        (false, _) => Vec::new(),
        (true, true) => options.sizes.clone(),
        (true, false) => vec![options.sizes[0]],
    };
    let rfc_trial = if options.full {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(500)
    };
    let rfc_max_trials = if options.full { 14 } else { 7 };
    let vlan_sizes: Vec<usize> = if options.full {
        options.sizes.clone()
    } else {
        vec![options.sizes[0]]
    };
    let vlan_backends = if kernel_vlan.is_none() { 2 } else { 1 };
    let total = options.pairs * 2 * options.sizes.len()
        + 2 * rfc_sizes.len()
        + if options.vlan_case {
            options.pairs * vlan_backends * vlan_sizes.len()
        } else {
            0
        };
    let mut progress = ProgressBar::new(total);

    let mut measurements: Vec<(String, Backend, usize, Measurement)> = Vec::new();
    let check = |stop: &AtomicBool| {
        if stop.load(Ordering::Relaxed) {
            Err(BenchError::Interrupted)
        } else {
            Ok(())
        }
    };
    // Saturation, A B A B ..., untagged and then the VLAN case.
    let mut run_pairs = |case: &str,
                         roles: &Roles,
                         sizes: &[usize],
                         backends: &[Backend]|
     -> Result<(), BenchError> {
        for pair in 0..options.pairs {
            for &backend in backends {
                check(stop)?;
                let lab = Lab::up(roles, backend, &options.worker_cores)?;
                for &size in sizes {
                    let m = trial(lab.roles, options, size, options.rate, options.trial, stop)?;
                    measurements.push((case.to_string(), backend, size, m));
                    progress.step(&format!(
                        "{} {case} {size} B, pair {}/{}",
                        backend_name(backend),
                        pair + 1,
                        options.pairs
                    ));
                }
            }
        }
        Ok(())
    };
    run_pairs("untagged", &untagged, &options.sizes, &backends)?;
    let mut not_measured = Vec::new();
    if options.vlan_case {
        let vlan_backends: &[Backend] = match &kernel_vlan {
            None => &backends,
            Some(reason) => {
                not_measured.push(NotMeasured {
                    case: "vlan".into(),
                    backend: "kernel".into(),
                    reason: reason.clone(),
                });
                &[Backend::Xbridge]
            }
        };
        run_pairs("vlan", &vlan, &vlan_sizes, vlan_backends)?;
    }
    // RFC 2544 throughput, then latency at 50 % and 90 % of it.
    let mut rfc = Vec::new();
    for backend in backends.iter().copied().filter(|_| !rfc_sizes.is_empty()) {
        check(stop)?;
        let lab = Lab::up(&untagged, backend, &options.worker_cores)?;
        for &size in &rfc_sizes {
            let line_rate = measurements
                .iter()
                .filter(|(case, b, s, _)| case == "untagged" && *b == backend && *s == size)
                .map(|(_, _, _, m)| m.offered_mpps * 1e6)
                .fold(0.0, f64::max);
            let mut failure = None;
            let search = rfc2544::search(
                line_rate,
                if options.full { 0.005 } else { 0.02 },
                rfc_max_trials,
                |rate| match trial(lab.roles, options, size, Some(rate), rfc_trial, stop) {
                    Ok(m) => Trial {
                        rate: m.offered_mpps * 1e6,
                        sent: m.sent,
                        received: m.received,
                    },
                    Err(err) => {
                        failure.get_or_insert(err);
                        Trial {
                            rate,
                            sent: 1,
                            received: 0,
                        }
                    }
                },
            );
            if let Some(err) = failure {
                return Err(err);
            }
            let latency_at = |share: f64| -> Result<Option<Latency>, BenchError> {
                if search.rate <= 0.0 {
                    return Ok(None);
                }
                Ok(trial(
                    lab.roles,
                    options,
                    size,
                    Some(search.rate * share),
                    Duration::from_secs(1),
                    stop,
                )?
                .latency)
            };
            let latency_at_50pct = latency_at(0.5)?;
            let latency_at_90pct = latency_at(0.9)?;
            rfc.push(Rfc2544 {
                case: "untagged".into(),
                backend: backend_name(backend).into(),
                frame_size: size,
                throughput_mpps: search.rate / 1e6,
                trial_seconds: rfc_trial.as_secs_f64(),
                trials: search.trials,
                latency_at_50pct,
                latency_at_90pct,
            });
            progress.step(&format!("{} RFC 2544 {size} B", backend_name(backend)));
        }
    }
    progress.finish();

    let mut results = Vec::new();
    for case in ["untagged", "vlan"] {
        for &size in &options.sizes {
            for backend in backends {
                let trials: Vec<Measurement> = measurements
                    .iter()
                    .filter(|(c, b, s, _)| c == case && *b == backend && *s == size)
                    .map(|(_, _, _, m)| m.clone())
                    .collect();
                if let Some(result) = CaseResult::new(case, backend_name(backend), size, trials) {
                    results.push(result);
                }
            }
        }
    }
    let mut notes = vec![format!(
        "frame sizes include the 4-byte FCS; frames on the veth are {} bytes shorter",
        FCS_LEN
    )];
    if !caps.vlan_filtering {
        notes.push(
            "this kernel's bridge has no vlan_filtering: the untagged kernel baseline is an unfiltered bridge".into(),
        );
    }
    notes.push(
        "CPU ns per packet counts every core's busy time, the generator's included, over delivered frames".into(),
    );
    notes.push(
        "kernel baseline: bridge-nf-call-{iptables,ip6tables,arptables} = 0 in the bridge namespace (pure L2)".into(),
    );
    notes.push(
        "veth runs the receiver's NAPI on the sending CPU: on the kernel bridge the generator, the bridge and the \
         sink share the generator's core; with xbridge the worker's core also carries its TX copy and the sink"
            .into(),
    );
    let mut report = Report {
        schema: SCHEMA.into(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: CpuTimes::read().map(|c| c.0.len()).unwrap_or(0),
        config: RunConfig {
            topology: options
                .topology
                .as_ref()
                .map_or("built-in (topologies/bench.toml)".into(), |p| p.display().to_string()),
            generator: match options.generator {
                GeneratorKind::Xdp => "xdp-live-frames".into(),
                GeneratorKind::Pktgen => "kernel-pktgen".into(),
            },
            frame_sizes: options.sizes.clone(),
            pairs: options.pairs,
            trial_seconds: options.trial.as_secs_f64(),
            flows: options.flows,
            full: options.full,
        },
        pinning: Pinning {
            generator_cores: options.generator_cores.clone(),
            xbridge_worker_cores: options.worker_cores.clone(),
            softirq: "not pinned: the kernel runs the veth NAPI of the generator's port on the generator's core, \
                      the rest where it is raised"
                .into(),
        },
        results,
        ratios: Default::default(),
        rfc2544: rfc,
        not_measured,
        notes,
    };
    report.compute_ratios();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_excludes_idle_and_iowait() {
        let before = CpuTimes::parse("cpu  1 1 1 1 1 1 1 1 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\ncpu1 0 0 0 1000 0 0 0 0 0 0\nintr 1\n");
        let after =
            CpuTimes::parse("cpu0 150 0 100 850 50 0 0 0 0 0\ncpu1 0 0 0 1100 0 0 0 0 0 0\n");
        let (shares, busy_ns) = before.busy_since(&after);
        assert_eq!(shares, vec![100.0 * 100.0 / 150.0, 0.0]);
        assert_eq!(busy_ns, 100.0 / 100.0 * 1e9);
    }

    #[test]
    fn the_pktgen_script_sets_frame_rate_and_flows() {
        let roles = Roles::new(Path::new("bench.toml"), UNTAGGED_TOPOLOGY).unwrap();
        let job = GeneratorJob {
            namespace: "xbench-gen".into(),
            interface: "eth0".into(),
            spec: roles.spec(64),
            kind: GeneratorKind::Pktgen,
            rate: Some(250_000.0),
            duration: Duration::from_secs(1),
            cores: vec![1],
            flows: 16,
        };
        let script = pktgen_script(&job, 1, 0);
        let lines: Vec<String> = script.iter().map(|(f, l)| format!("{f}: {l}")).collect();
        for expected in [
            "kpktgend_1: add_device eth0",
            "eth0: pkt_size 60",
            "eth0: dst_mac 02:00:00:00:be:02",
            "eth0: src_mac 02:00:00:00:be:01",
            "eth0: dst 192.168.50.2",
            "eth0: udp_src_min 40000",
            "eth0: udp_src_max 40015",
            "eth0: delay 4000",
            "eth0: clone_skb 0",
        ] {
            assert!(
                lines.contains(&expected.to_string()),
                "missing {expected}: {lines:?}"
            );
        }
        assert_eq!(lines[0], "kpktgend_1: rem_device_all");
    }

    #[test]
    fn the_built_in_topologies_have_the_roles() {
        let roles = Roles::new(Path::new("bench.toml"), UNTAGGED_TOPOLOGY).unwrap();
        assert_eq!(roles.generator_ns, "xbench-gen");
        assert_eq!(roles.generator_port.1, "p1");
        assert_eq!(roles.spec(64).build().len(), 60);
        let vlan = Roles::new(Path::new("bench-vlan.toml"), VLAN_TOPOLOGY).unwrap();
        assert!(vlan.topology.uses_vlans());
    }
}
