//! The `xbridge` command line: parses arguments once, runs one command, and
//! turns every error into one line on stderr and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use xbridge::runtime::{self, Running};
use xbridge::topo::{self, Backend};
use xbridge::topology::Topology;

mod commands;
use commands::RuntimeArgs;

/// An AF_XDP software bridge with Linux-bridge 802.1Q VLAN semantics.
///
/// Typical session:
///   xbridge topo up topologies/two-namespaces.toml      # namespaces + veths
///   xbridge run topologies/two-namespaces.toml          # the bridge (Ctrl-C stops)
///   ip netns exec ns1 ping 192.168.50.2                 # in another shell
///   xbridge stats                                       # counters of the running bridge
///   xbridge vlan add dev p2 vid 20 pvid untagged        # change it live (also: fdb, link)
///   xbridge monitor                                     # learn/age/config events as they happen
///   xbridge trace dev p1 src 02:00:00:00:00:01 dst ff:ff:ff:ff:ff:ff
///   xbridge reload topologies/two-namespaces.toml       # back to the file, all or nothing
///   xbridge topo down topologies/two-namespaces.toml
///
/// Or `xbridge demo` to see all of that in one go.
#[derive(Debug, Parser)]
#[command(name = "xbridge", version, verbatim_doc_comment)]
struct Cli {
    /// More log output (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Put PREFIX before every namespace and bridge name of the topology
    /// file, to run several copies of one file side by side.
    #[arg(long, global = true, value_name = "PREFIX")]
    prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build or remove the namespaces, veths and (kernel backend) bridges of a topology file.
    #[command(subcommand)]
    Topo(TopoCommand),
    /// Run the bridge(s) of a topology in the foreground until SIGINT/SIGTERM.
    ///
    /// The topology must be up (`xbridge topo up FILE`). Each bridge runs in
    /// its namespace with one worker per queue of its interfaces, at most
    /// --workers. Counters are published to /run/xbridge/BRIDGE.stats.json
    /// (see `xbridge stats`). On exit every XDP program is detached.
    Run(RunArgs),
    /// Counters of a running bridge: per port rx/tx frames and bytes, drops by reason (spec X2).
    ///
    ///   xbridge stats [-s] [dev PORT] [-j]
    ///
    /// -s adds per-VLAN rx/tx, the XDP program's and the AF_XDP sockets' counters.
    #[command(verbatim_doc_comment)]
    Stats(RuntimeArgs),
    /// The forwarding database of a running bridge, like bridge(8)'s `fdb`.
    ///
    ///   xbridge fdb show [dev PORT] [vlan V] [static|dynamic] [-j]
    ///   xbridge fdb add MAC dev PORT [vlan V]     (a static entry)
    ///   xbridge fdb del MAC [vlan V]
    ///   xbridge fdb flush [dev PORT] [vlan V] [static] [dynamic]
    ///                                             (default: dynamic entries only)
    #[command(verbatim_doc_comment)]
    Fdb(RuntimeArgs),
    /// The VLANs of a running bridge's ports, changed live, like bridge(8)'s `vlan`.
    ///
    ///   xbridge vlan show [dev PORT] [vid V[-V2]] [-j]
    ///   xbridge vlan add dev PORT vid V[-V2] [pvid] [untagged]
    ///   xbridge vlan del dev PORT vid V[-V2]
    ///
    /// As in Linux, `add` sets the flags as given: re-adding the PVID without
    /// `pvid` takes the PVID away; deleting a VLAN removes the port's FDB
    /// entries in it. Workers pick the change up on their next poll.
    #[command(verbatim_doc_comment)]
    Vlan(RuntimeArgs),
    /// Port settings of a running bridge, like bridge(8)'s `link`.
    ///
    ///   xbridge link show [dev PORT] [-j]
    ///   xbridge link set dev PORT [learning on|off] [flood on|off]
    ///       [mcast_flood on|off] [bcast_flood on|off] [isolated on|off]
    ///       [accept all|untagged|tagged] [max_learned N]
    #[command(verbatim_doc_comment)]
    Link(RuntimeArgs),
    /// Stream a running bridge's events, like `bridge monitor`.
    ///
    ///   xbridge monitor [fdb|vlan|link]... [-j]
    ///
    /// fdb: learn, move, age, limit reached, static add/del, flush;
    /// vlan and link: configuration changes. -j prints one JSON object a line.
    #[command(verbatim_doc_comment)]
    Monitor(RuntimeArgs),
    /// Explain what a running bridge would do with a frame, sending nothing.
    ///
    ///   xbridge trace dev PORT src MAC dst MAC [vlan V [pcp P] [dei]]... [proto HEX] [-j]
    ///   xbridge trace dev PORT hex BYTES
    ///
    /// Lists the spec items applied (I1-E5) and the egress ports with the
    /// tags each copy would carry. The frame is what PORT's interface sees
    /// (for IF.N, the sub-interface's tag N is put outside it). The real FDB
    /// is used but never written: nothing is learned.
    ///   xbridge trace dev a src 02:00:00:00:00:0a dst ff:ff:ff:ff:ff:ff vlan 20
    #[command(verbatim_doc_comment)]
    Trace(RuntimeArgs),
    /// Apply a changed topology file to a running bridge, all or nothing.
    ///
    ///   xbridge reload FILE [--bridge NAME]
    ///
    /// VLANs, PVIDs, accept, flags, static FDB entries, vlan_filtering and
    /// ageing_time may change; ports may not (that needs a restart). On any
    /// error nothing changes. Frames keep flowing: workers switch to the new
    /// configuration between two polls.
    #[command(verbatim_doc_comment)]
    Reload(ReloadArgs),
    /// Bring up two namespaces behind xbridge, ping across, show the counters, tear down.
    Demo,
    /// Measure xbridge against the Linux kernel bridge on the same topology.
    ///
    /// Follows shared/spec/bench-method.md: a generator -> bridge -> sink
    /// topology built fresh for each backend and pair, run A B A B..., with
    /// a live-frames XDP generator and an XDP sink that checks sequence
    /// numbers and latency. Reports offered/delivered Mpps and Gbps, loss,
    /// RFC 2544 zero-loss throughput, latency p50/p99/p99.9, CPU per core and
    /// CPU-ns per delivered packet, and the xbridge/kernel ratios pair by
    /// pair. The default run takes under two minutes on two cores.
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// Send valid UDP/IPv4 test frames at a rate, with xbridge's live-frames XDP generator.
    ///
    /// Frames carry a sequence number and a send timestamp in their payload
    /// (see bench/README.md), cycle the UDP source port over --flows, and
    /// leave through --dev by XDP redirect (BPF_PROG_RUN live frames, kernel
    /// 5.18 or later). The receiving end of a veth needs an XDP program or GRO on,
    /// or the kernel drops redirected frames.
    ///   xbridge pktgen --netns gen --dev eth0 --dst-mac 02:00:00:00:be:02 --size 64 --rate 100000 --duration 5
    #[command(verbatim_doc_comment)]
    Pktgen(PktgenArgs),
    /// Check xbridge frame by frame against the real Linux bridge (in a VM).
    ///
    /// Boots the installed Debian kernel under QEMU (KVM, else TCG) with a
    /// small initramfs, builds each scenario there as a Linux bridge with
    /// vlan_filtering 1 (sub-interface ports as 8021q devices), sends its
    /// frames, and compares what every port emitted with xbridge's pipeline.
    /// Known deviations (a PVID outside the member set, spec I4) are counted
    /// by rule; any other difference is a mismatch with a replayable
    /// reproducer. Needs: qemu-system-x86 linux-image-amd64 busybox-static.
    #[command(verbatim_doc_comment)]
    Conformance(ConformanceArgs),
}

#[derive(Debug, Subcommand)]
enum TopoCommand {
    /// Create the topology: `ip netns add`, veth pairs, addresses, and with
    /// --backend kernel a Linux bridge with the same ports and VLANs.
    #[command(verbatim_doc_comment)]
    Up {
        /// Topology file (TOML, see topologies/README.md).
        file: PathBuf,
        /// Which bridge to build: xbridge (start it with `xbridge run`) or the Linux kernel bridge.
        #[arg(long, value_enum, default_value_t = Backend::Xbridge)]
        backend: Backend,
        /// Print the commands instead of running them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove what `topo up` made for this file (namespaces xbridge did not create are left alone).
    Down {
        file: PathBuf,
        /// Print the commands instead of running them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate a topology file and summarise it.
    Check {
        file: PathBuf,
        /// JSON output.
        #[arg(short, long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Topology file whose bridges to run.
    file: PathBuf,
    /// Run only this bridge of the file (default: all of them).
    #[arg(long)]
    bridge: Option<String>,
    /// Worker threads per bridge (each owns one queue of every port).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Cores to pin workers to, e.g. 0,1 (default: worker i on core i).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Serve Prometheus metrics at ADDR (PORT means 127.0.0.1:PORT; off by default).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Allow --metrics on a non-loopback address (the endpoint has no authentication).
    #[arg(long, requires = "metrics")]
    metrics_public: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The changed topology file.
    pub file: PathBuf,
    /// The bridge to reload (may be left out when exactly one bridge of FILE runs).
    #[arg(long)]
    pub bridge: Option<String>,
    /// JSON output: the list of changes.
    #[arg(short, long)]
    pub json: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Topology to measure (hosts "gen" and "sink" with a fixed-MAC eth0, one bridge); default: topologies/bench.toml.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Frame sizes on the wire, FCS included.
    #[arg(long, value_delimiter = ',', default_value = "64,512,1518")]
    sizes: Vec<usize>,
    /// A B pairs to run (medians and ranges are over these).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pairs: u16,
    /// Seconds per saturation trial.
    #[arg(long, default_value_t = 2.0)]
    trial_secs: f64,
    /// The long run: RFC 2544 for every size with 5 s trials, the VLAN case for every size.
    #[arg(long)]
    full: bool,
    /// Flows (UDP source ports) the generator cycles through.
    #[arg(long, default_value_t = 16)]
    flows: u32,
    /// The generator: xdp (live frames, kernel 5.18 or later) or pktgen (kernel pktgen).
    #[arg(long, value_enum, default_value_t = xbridge::bench::GeneratorKind::Xdp)]
    generator: xbridge::bench::GeneratorKind,
    /// Cores for generator threads (one thread each); default: the last core.
    #[arg(long, value_delimiter = ',')]
    generator_cores: Option<Vec<usize>>,
    /// Cores for xbridge workers (one worker each); default: core 0.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    worker_cores: Vec<usize>,
    /// Skip the VLAN case.
    #[arg(long)]
    no_vlan: bool,
    /// Offer this many frames/s in the measured trials instead of saturating.
    #[arg(long)]
    rate: Option<f64>,
    /// Skip the RFC 2544 search.
    #[arg(long)]
    no_rfc2544: bool,
    /// Write the report as JSON (schema xbridge-bench/1, see bench/README.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG plot of delivered Mpps per size and backend.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PktgenArgs {
    /// Network namespace to send from (default: the current one).
    #[arg(long)]
    netns: Option<String>,
    /// Interface the frames leave through.
    #[arg(long)]
    dev: String,
    /// Destination MAC.
    #[arg(long)]
    dst_mac: xbridge::wire::MacAddr,
    /// Source MAC (default: the interface's own).
    #[arg(long)]
    src_mac: Option<xbridge::wire::MacAddr>,
    #[arg(long, default_value = "192.168.50.1")]
    src_ip: std::net::Ipv4Addr,
    #[arg(long, default_value = "192.168.50.2")]
    dst_ip: std::net::Ipv4Addr,
    /// Frame size on the wire, FCS included (64..=1518).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(64..=1518))]
    size: u16,
    /// Frames per second over all threads (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Flows: UDP source ports cycled through.
    #[arg(long, default_value_t = 1)]
    flows: u32,
    /// Cores for generator threads, one thread each (default: the last core).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// JSON output.
    #[arg(short, long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConformanceArgs {
    /// Long mode: also run every scenario through the real xbridge dataplane
    /// (AF_XDP on veths in namespaces here; needs root) and compare it with the kernel.
    #[arg(long)]
    dataplane: bool,
    /// Run the scenarios of this file (a reproducer) instead of the built-in ones.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Random frames to add (in scenarios of ~100 frames each).
    #[arg(long, default_value_t = 0)]
    random: usize,
    /// Seed of the random scenarios (the same seed replays them).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON output.
    #[arg(short, long)]
    json: bool,
    /// Where to write reproducers of mismatches.
    #[arg(long, default_value = "conformance-mismatches")]
    reproducers: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn,aya=error,aya_obj=error",
        1 => "info,aya=warn,aya_obj=warn",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let prefix = cli.prefix.unwrap_or_default();
    match dispatch(cli.command, &prefix) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xbridge: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command, prefix: &str) -> Result<()> {
    let load = |file: &Path| -> Result<Topology> { Ok(Topology::load(file)?.with_prefix(prefix)?) };
    match command {
        Command::Topo(TopoCommand::Up {
            file,
            backend,
            dry_run,
        }) => topo_up(load(&file)?, &file, prefix, backend, dry_run),
        Command::Topo(TopoCommand::Down { file, dry_run }) => {
            topo_down(load(&file)?, &file, dry_run)
        }
        Command::Topo(TopoCommand::Check { file, json }) => topo_check(load(&file)?, &file, json),
        Command::Run(args) => run(load(&args.file)?, args),
        Command::Stats(args) => commands::stats(args),
        Command::Fdb(args) => commands::fdb(args),
        Command::Vlan(args) => commands::vlan(args),
        Command::Link(args) => commands::link(args),
        Command::Monitor(args) => commands::monitor(args),
        Command::Trace(args) => commands::trace(args),
        Command::Reload(args) => commands::reload(args, prefix),
        Command::Demo => demo(),
        Command::Bench(args) => bench(args),
        Command::Pktgen(args) => pktgen(args),
        Command::Conformance(args) => conformance(args),
    }
}

fn topo_up(
    topology: Topology,
    file: &Path,
    prefix: &str,
    backend: Backend,
    dry_run: bool,
) -> Result<()> {
    if dry_run {
        let caps = match backend {
            Backend::Kernel if runtime::is_root() => topo::kernel_caps(),
            _ => topo::KernelCaps::FULL,
        };
        if backend == Backend::Kernel {
            if let Some(reason) = topo::kernel_refusal(&topology, &caps) {
                bail!(
                    "the kernel bridge backend cannot build {}: {reason}",
                    file.display()
                );
            }
        }
        let plan = topo::plan_up(&topology, backend, &caps);
        for note in &plan.notes {
            println!("# note: {note}");
        }
        for step in &plan.steps {
            println!("{step}");
        }
        return Ok(());
    }
    let plan =
        topo::up(&topology, backend).with_context(|| format!("topo up {}", file.display()))?;
    for note in &plan.notes {
        eprintln!("xbridge: note: {note}");
    }
    let namespaces = topology.namespaces().join(", ");
    match backend {
        Backend::Xbridge => println!(
            "{}: namespaces {namespaces} are up; start the bridge with `xbridge run {}{}`",
            file.display(),
            file.display(),
            if prefix.is_empty() {
                String::new()
            } else {
                format!(" --prefix {prefix}")
            }
        ),
        Backend::Kernel => println!(
            "{}: namespaces {namespaces} are up on the Linux bridge",
            file.display()
        ),
    }
    Ok(())
}

fn topo_down(topology: Topology, file: &Path, dry_run: bool) -> Result<()> {
    if dry_run {
        for step in topo::plan_down(&topology).steps {
            println!("{step}");
        }
        return Ok(());
    }
    let report = topo::down(&topology).with_context(|| format!("topo down {}", file.display()))?;
    if !report.removed.is_empty() {
        println!("removed namespaces: {}", report.removed.join(", "));
    }
    if !report.not_ours.is_empty() {
        eprintln!(
            "xbridge: left alone (not created by xbridge): {}",
            report.not_ours.join(", ")
        );
    }
    if report.removed.is_empty() && report.not_ours.is_empty() {
        println!("{}: nothing to remove", file.display());
    }
    Ok(())
}

fn topo_check(topology: Topology, file: &Path, json: bool) -> Result<()> {
    let summary = serde_json::json!({
        "file": file,
        "namespaces": topology.namespaces(),
        "links": topology.links.len(),
        "uses_vlans": topology.uses_vlans(),
        "bridges": topology.bridges.iter().map(|b| serde_json::json!({
            "name": b.config.name,
            "namespace": b.namespace,
            "vlan_filtering": b.config.vlan_filtering,
            "ports": b.config.ports.iter().map(|p| serde_json::json!({
                "name": p.name,
                "pvid": p.pvid,
                "vlans": p.vlans.iter().map(|(vid, mode)| serde_json::json!({"vid": vid, "mode": mode})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{}: ok ({} namespaces, {} links, {} bridges)",
            file.display(),
            topology.namespaces().len(),
            topology.links.len(),
            topology.bridges.len()
        );
    }
    Ok(())
}

fn run(topology: Topology, args: RunArgs) -> Result<()> {
    let specs: Vec<_> = match &args.bridge {
        Some(name) => vec![topology
            .bridge(name)
            .with_context(|| format!("{} has no bridge named {name}", args.file.display()))?
            .clone()],
        None => topology.bridges.clone(),
    };
    if specs.is_empty() {
        bail!("{} declares no bridge", args.file.display());
    }
    let cores = args
        .cores
        .unwrap_or_else(|| (0..usize::from(args.workers)).collect());
    let metrics = args
        .metrics
        .as_deref()
        .map(|text| xbridge::metrics::parse_address(text, args.metrics_public))
        .transpose()?;
    let stop = runtime::stop_on_signals().context("installing signal handlers")?;
    let mut running = Running::start(&specs, usize::from(args.workers), &cores)?;
    if let Some(address) = metrics {
        let bound = running
            .serve_metrics(address)
            .with_context(|| format!("serving metrics on {address}"))?;
        eprintln!("xbridge: Prometheus metrics on http://{bound}/metrics");
    }
    for bridge in running.bridges() {
        let pipeline = bridge.pipeline();
        let config = pipeline.config();
        let interfaces: Vec<String> = bridge
            .attach_modes()
            .into_iter()
            .map(|(name, mode, queues)| {
                format!(
                    "{name} ({mode:?} XDP, {queues} queue{})",
                    if queues == 1 { "" } else { "s" }
                )
            })
            .collect();
        eprintln!(
            "xbridge: bridge {} running in namespace {}: {} port(s) on {}; {} worker(s). Ctrl-C stops.",
            config.name,
            bridge.namespace(),
            config.ports.len(),
            interfaces.join(", "),
            bridge.workers()
        );
    }
    running.serve(&stop);
    for stats in running.stop() {
        let frames: u64 = stats.ports.values().map(|p| p.rx_frames).sum();
        eprintln!(
            "xbridge: bridge {} stopped after {frames} frames; XDP programs detached",
            stats.bridge
        );
    }
    Ok(())
}

/// The demo topology, embedded so `xbridge demo` works from anywhere.
const DEMO_TOPOLOGY: &str = include_str!("../../topologies/two-namespaces.toml");

fn demo() -> Result<()> {
    let topology = Topology::parse(Path::new("topologies/two-namespaces.toml"), DEMO_TOPOLOGY)?;
    println!("== xbridge demo: two namespaces joined by xbridge (topologies/two-namespaces.toml)");
    for step in topo::plan_up(&topology, Backend::Xbridge, &topo::KernelCaps::FULL).steps {
        println!("   {step}");
    }
    topo::up(&topology, Backend::Xbridge).context("bringing the demo topology up")?;
    let result = (|| -> Result<()> {
        let running = Running::start(&topology.bridges, 1, &[0])?;
        println!("== xbridge is forwarding; ping from ns1 to ns2:");
        let status = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                "ns1",
                "ping",
                "-c",
                "5",
                "-i",
                "0.2",
                "-W",
                "2",
                "192.168.50.2",
            ])
            .status()
            .context("running ping (apt-get install iputils-ping)")?;
        let stats = running.stop();
        println!("== counters:");
        for bridge in &stats {
            commands::print_stats(bridge);
        }
        if !status.success() {
            bail!("ping from ns1 to ns2 failed");
        }
        Ok(())
    })();
    let down = topo::down(&topology);
    println!("== topology removed");
    result?;
    down?;
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    if let Some(bad) = args.sizes.iter().find(|s| !(64..=1518).contains(*s)) {
        bail!("frame size {bad} is outside 64..=1518");
    }
    if !(args.trial_secs > 0.0 && args.trial_secs <= 600.0) {
        bail!("--trial-secs must be in (0, 600]");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = xbridge::bench::BenchOptions {
        topology: args.topology,
        sizes: args.sizes,
        pairs: usize::from(args.pairs),
        trial: std::time::Duration::from_secs_f64(args.trial_secs),
        full: args.full,
        flows: args.flows.max(1),
        generator: args.generator,
        generator_cores: args.generator_cores.unwrap_or_else(|| vec![cpus - 1]),
        worker_cores: args.worker_cores,
        vlan_case: !args.no_vlan,
        rate: args.rate,
        rfc2544: !args.no_rfc2544,
    };
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate must be a positive number of frames per second");
        }
    }
    let stop = runtime::stop_on_signals().context("installing signal handlers")?;
    let report = xbridge::bench::run(&options, &stop)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xbridge: report written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, xbridge_bench::plot::svg(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xbridge: plot written to {}", path.display());
    }
    Ok(())
}

fn pktgen(args: PktgenArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!("--duration must be in (0, 86400] seconds");
    }
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("--rate must be a positive number of frames per second");
        }
    }
    let namespace = match args.netns {
        Some(ns) => {
            if !xbridge::sys::netns::exists(&ns) {
                bail!("network namespace {ns} does not exist");
            }
            ns
        }
        None => String::new(),
    };
    let src_mac = match args.src_mac {
        Some(mac) => mac,
        None => {
            let mut command = std::process::Command::new("ip");
            if !namespace.is_empty() {
                command.args(["-n", &namespace]);
            }
            let out = command
                .args(["-br", "link", "show", "dev", &args.dev])
                .output()
                .context("running ip")?;
            if !out.status.success() {
                bail!(
                    "interface {} not found{}",
                    args.dev,
                    if namespace.is_empty() {
                        String::new()
                    } else {
                        format!(" in {namespace}")
                    }
                );
            }
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(2)
                .and_then(|mac| mac.parse().ok())
                .with_context(|| format!("reading the MAC of {}", args.dev))?
        }
    };
    let spec = xbridge::wire::UdpFrameSpec {
        dst_mac: args.dst_mac,
        src_mac,
        src_ip: args.src_ip,
        dst_ip: args.dst_ip,
        src_port: 40000,
        dst_port: 9,
        wire_size: usize::from(args.size),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let job = xbridge::bench::GeneratorJob {
        namespace,
        interface: args.dev.clone(),
        spec,
        kind: xbridge::bench::GeneratorKind::Xdp,
        rate: args.rate,
        duration: std::time::Duration::from_secs_f64(args.duration),
        cores: args.cores.unwrap_or_else(|| vec![cpus - 1]),
        flows: args.flows.max(1),
    };
    let stop = runtime::stop_on_signals().context("installing signal handlers")?;
    let (sent, seconds) = match xbridge::bench::generate(&job, &stop) {
        Err(xbridge::bench::BenchError::Interrupted) => bail!("interrupted"),
        other => other?,
    };
    let mpps = sent as f64 / seconds / 1e6;
    let gbps = sent as f64 * f64::from(args.size) * 8.0 / seconds / 1e9;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"sent": sent, "seconds": seconds, "mpps": mpps, "gbps": gbps, "frame_size": args.size})
        );
    } else {
        println!(
            "sent {sent} frames of {} B in {seconds:.2} s: {mpps:.3} Mpps, {gbps:.3} Gbps",
            args.size
        );
    }
    Ok(())
}

/// The agreement lines of a conformance summary, each label after `indent`.
fn print_agreement(summary: &xbridge::conformance::Summary, indent: &str) {
    let line =
        |label: String, value: usize| println!("{:<28}{:>10}", format!("{indent}{label}"), value);
    line("agreements".into(), summary.agreements);
    for (rule, count) in &summary.deviations {
        line(format!("deviation: {rule}"), *count);
    }
    line("mismatches".into(), summary.mismatches.len());
    line("fdb mismatches".into(), summary.fdb_mismatches.len());
}

fn conformance(args: ConformanceArgs) -> Result<()> {
    let probe = std::env::current_exe()
        .context("locating xbridge")?
        .with_file_name("xbridge-probe");
    let parts = xbridge::vm::VmParts::find(&probe)?;
    let scenarios: Vec<xbridge::conformance::Scenario> = match &args.replay {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a list of scenarios", path.display()))?
        }
        None => {
            let mut scenarios = vec![
                xbridge::conformance::reference_scenario(),
                xbridge::conformance::sub_interface_scenario(),
            ];
            scenarios.extend(xbridge::conformance::random_scenarios(
                args.seed,
                args.random,
            ));
            scenarios
        }
    };
    let (outcomes, accelerator, seconds) = xbridge::vm::run(&parts, &scenarios)?;
    let mut summary = xbridge::conformance::compare_all(&scenarios, &outcomes, |scenario| {
        scenario.run_pipeline().unwrap_or_default()
    });
    summary.accelerator = accelerator.to_string();
    summary.vm_seconds = seconds;
    let dataplane = if args.dataplane {
        let prefix = format!("xc{:x}-", std::process::id() & 0xfff);
        let mut ours = Vec::new();
        for scenario in &scenarios {
            ours.push(xbridge::conformance_host::run_scenario(scenario, &prefix)?);
        }
        Some(xbridge::conformance::compare_dataplane(
            &scenarios, &outcomes, &ours,
        ))
    } else {
        None
    };
    for mismatch in &summary.mismatches {
        let scenario = scenarios
            .iter()
            .find(|s| s.name == mismatch.scenario)
            .expect("known");
        // Minimal: the frames up to the mismatching one (earlier frames
        // build the FDB it depends on), nothing after.
        let mut minimal = scenario.clone();
        minimal.name = format!("{}-frame-{}", scenario.name, mismatch.frame + 1);
        minimal.frames.truncate(mismatch.frame + 1);
        let path = xbridge::vm::write_reproducer(&args.reproducers, &minimal)?;
        eprintln!(
            "mismatch: {} frame {} sent on {}: {}\n  ports: {:?}\n  xbridge: {:?}\n  kernel:  {:?}\n  replay: xbridge conformance --replay {}",
            mismatch.scenario,
            mismatch.frame + 1,
            mismatch.sent_on,
            mismatch.sent,
            mismatch.config,
            mismatch.xbridge.0,
            mismatch.kernel.0,
            path.display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "kernel: {} in a VM ({}, {:.1} s)",
            parts.kernel.display(),
            summary.accelerator,
            summary.vm_seconds
        );
        println!("{:<28}{:>10}", "scenarios", summary.scenarios);
        println!("{:<28}{:>10}", "frames", summary.frames);
        print_agreement(&summary, "");
        if let Some(dataplane) = &dataplane {
            println!("real dataplane (AF_XDP on veths) against the kernel:");
            print_agreement(dataplane, "  ");
        }
    }
    if let Some(dataplane) = &dataplane {
        for mismatch in &dataplane.mismatches {
            eprintln!(
                "dataplane mismatch: {} frame {} sent on {}: {}\n  xbridge: {:?}\n  kernel:  {:?}",
                mismatch.scenario,
                mismatch.frame + 1,
                mismatch.sent_on,
                mismatch.sent,
                mismatch.xbridge.0,
                mismatch.kernel.0
            );
        }
        for fdb in &dataplane.fdb_mismatches {
            eprintln!(
                "dataplane fdb mismatch: {}: only on xbridge {:?}, only on the kernel {:?}",
                fdb.scenario, fdb.only_xbridge, fdb.only_kernel
            );
        }
        if !dataplane.mismatches.is_empty() || !dataplane.fdb_mismatches.is_empty() {
            bail!("the real dataplane disagrees with the kernel");
        }
    }
    for fdb in &summary.fdb_mismatches {
        eprintln!(
            "fdb mismatch: {}: only on xbridge {:?}, only on the kernel {:?}",
            fdb.scenario, fdb.only_xbridge, fdb.only_kernel
        );
    }
    if !summary.fdb_mismatches.is_empty() {
        bail!(
            "{} scenario(s) ended with different FDBs",
            summary.fdb_mismatches.len()
        );
    }
    if !summary.mismatches.is_empty() {
        bail!("{} unexplained mismatch(es)", summary.mismatches.len());
    }
    Ok(())
}
