//! The binary's runtime-control commands (`fdb`, `vlan`, `link`, `stats`,
//! `monitor`, `trace`, `reload`): bridge(8)-style words parsed once into
//! control requests, answers printed as text or JSON.

use anyhow::{bail, Context, Result};
use clap::Args;
use xbridge::config::Accept;
use xbridge::control::{self, FdbRow, LinkRow, Request, VlanRow};
use xbridge::events::{Event, Topic};
use xbridge::pipeline::DropReason;
use xbridge::reconfig::{Change, Edit, LinkChanges, VidRange};
use xbridge::runtime;
use xbridge::stats::BridgeStats;
use xbridge::trace::Trace;

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// The bridge (may be left out when exactly one runs).
    #[arg(long)]
    pub bridge: Option<String>,
    /// JSON output.
    #[arg(short, long)]
    pub json: bool,
    /// More detail (stats: per-VLAN, XDP and socket counters).
    #[arg(short = 's', long = "statistics")]
    pub details: bool,
    /// The action and its arguments, as with bridge(8).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// `--bridge`, or the one running bridge.
fn which_bridge(named: Option<String>) -> Result<String> {
    if let Some(bridge) = named {
        return Ok(bridge);
    }
    let running = runtime::running_bridges();
    match running.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no bridge is running (start one with `xbridge run FILE`)"),
        many => bail!(
            "several bridges run ({}); pick one with --bridge",
            many.join(", ")
        ),
    }
}

/// Lets `-j`, `-s` and `--bridge NAME` stand anywhere among the words, as
/// people type them after the action.
fn normalise(mut args: RuntimeArgs) -> Result<RuntimeArgs> {
    let mut words = Vec::new();
    let mut rest = args.words.into_iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "-j" | "--json" => args.json = true,
            "-s" | "--statistics" => args.details = true,
            "--bridge" => args.bridge = Some(rest.next().context("--bridge needs a name")?),
            _ => words.push(word),
        }
    }
    args.words = words;
    Ok(args)
}

/// A command's words after normalising, with its bridge (looked up only
/// once the words have parsed, so a typo is reported as such).
struct Invocation {
    named: Option<String>,
    json: bool,
    details: bool,
    words: Vec<String>,
}

fn invocation(args: RuntimeArgs) -> Result<Invocation> {
    let args = normalise(args)?;
    Ok(Invocation {
        named: args.bridge,
        json: args.json,
        details: args.details,
        words: args.words,
    })
}

impl Invocation {
    fn bridge(&self) -> Result<String> {
        which_bridge(self.named.clone())
    }
}

fn ask<T: serde::de::DeserializeOwned>(bridge: &str, request: &Request) -> Result<T> {
    Ok(control::request(bridge, request)?)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Keyword arguments: `dev PORT`, `vlan V`/`vid V[-V2]`, flags without a
/// value, `key value` settings, and one bare word where the action takes it.
#[derive(Debug, Default)]
struct Words {
    dev: Option<String>,
    vids: Option<VidRange>,
    flags: Vec<String>,
    settings: Vec<(String, String)>,
    bare: Option<String>,
}

impl Words {
    fn vlan(&self) -> Result<Option<u16>> {
        match self.vids {
            Some(range) if !range.is_single() => {
                bail!("a range ({range}) is not allowed here; give one VLAN")
            }
            other => Ok(other.map(|r| r.first)),
        }
    }

    fn dev(&self, what: &str) -> Result<String> {
        self.dev
            .clone()
            .with_context(|| format!("{what} needs `dev PORT`"))
    }
}

fn parse_words(
    words: &[String],
    flags: &[&str],
    settings: &[&str],
    takes_bare: bool,
) -> Result<Words> {
    let mut parsed = Words::default();
    let mut rest = words.iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "dev" => parsed.dev = Some(rest.next().context("`dev` needs a port name")?.clone()),
            "vlan" | "vid" => {
                let text = rest.next().context("`vid` needs a VLAN ID or range")?;
                parsed.vids = Some(VidRange::parse(text)?);
            }
            flag if flags.contains(&flag) => parsed.flags.push(flag.to_string()),
            setting if settings.contains(&setting) => {
                let value = rest
                    .next()
                    .with_context(|| format!("`{setting}` needs a value"))?;
                parsed.settings.push((setting.to_string(), value.clone()));
            }
            other if takes_bare && parsed.bare.is_none() => parsed.bare = Some(other.to_string()),
            other => bail!("unexpected `{other}`"),
        }
    }
    Ok(parsed)
}

fn action(invocation: &Invocation, command: &str, actions: &str) -> Result<(String, Vec<String>)> {
    let (action, words) = invocation
        .words
        .split_first()
        .with_context(|| format!("{command} needs an action: {actions}"))?;
    Ok((action.clone(), words.to_vec()))
}

fn print_changes(bridge: &str, changes: &[Change], json: bool) -> Result<()> {
    if json {
        return print_json(&changes);
    }
    for change in changes {
        println!("bridge {bridge}: {change}");
    }
    Ok(())
}

pub fn fdb(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let (action, words) = action(&call, "fdb", "show, add, del or flush")?;
    match action.as_str() {
        "show" => {
            let words = parse_words(&words, &["static", "dynamic"], &[], false)?;
            let vlan = words.vlan()?;
            let mut rows: Vec<FdbRow> = ask(&call.bridge()?, &Request::FdbShow)?;
            rows.retain(|r| {
                words.dev.as_ref().is_none_or(|d| &r.port == d)
                    && vlan.is_none_or(|v| r.vlan == v)
                    && (!words.flags.contains(&"static".into()) || r.is_static)
                    && (!words.flags.contains(&"dynamic".into()) || !r.is_static)
            });
            if call.json {
                return print_json(&rows);
            }
            for row in rows {
                let kind = if row.is_static {
                    "static".to_string()
                } else {
                    format!("{}s", row.age.unwrap_or(0))
                };
                println!("{} dev {} vlan {} {kind}", row.mac, row.port, row.vlan);
            }
        }
        "add" => {
            let words = parse_words(&words, &["static"], &[], true)?;
            let mac = words.bare.clone().context("fdb add needs a MAC")?;
            let port = words.dev("fdb add")?;
            ask::<()>(
                &call.bridge()?,
                &Request::FdbAdd {
                    mac,
                    port,
                    vlan: words.vlan()?,
                },
            )?;
        }
        "del" => {
            let words = parse_words(&words, &[], &[], true)?;
            let mac = words.bare.clone().context("fdb del needs a MAC")?;
            ask::<()>(
                &call.bridge()?,
                &Request::FdbDel {
                    mac,
                    vlan: words.vlan()?,
                },
            )?;
        }
        "flush" => {
            let words = parse_words(&words, &["dynamic", "static"], &[], false)?;
            let include_static = words.flags.iter().any(|f| f == "static");
            let request = Request::FdbFlush {
                port: words.dev.clone(),
                vlan: words.vlan()?,
                dynamic: !include_static || words.flags.iter().any(|f| f == "dynamic"),
                include_static,
            };
            let removed: usize = ask(&call.bridge()?, &request)?;
            if call.json {
                return print_json(&serde_json::json!({ "removed": removed }));
            }
            println!(
                "{removed} entr{} removed",
                if removed == 1 { "y" } else { "ies" }
            );
        }
        other => bail!("unknown fdb action `{other}` (show, add, del, flush)"),
    }
    Ok(())
}

pub fn vlan(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let (action, words) = action(&call, "vlan", "show, add or del")?;
    match action.as_str() {
        "show" => {
            let words = parse_words(&words, &[], &[], false)?;
            let mut rows: Vec<VlanRow> = ask(&call.bridge()?, &Request::VlanShow)?;
            rows.retain(|r| {
                words.dev.as_ref().is_none_or(|d| &r.port == d)
                    && words
                        .vids
                        .is_none_or(|v| (v.first..=v.last).contains(&r.vlan))
            });
            if call.json {
                return print_json(&rows);
            }
            println!("{:<12} vlan-id", "port");
            let mut last_port = String::new();
            for row in rows {
                let mut flags = Vec::new();
                if row.pvid {
                    flags.push("PVID");
                }
                if row.untagged {
                    flags.push("Egress Untagged");
                }
                let port = if row.port == last_port {
                    String::new()
                } else {
                    row.port.clone()
                };
                println!(
                    "{}",
                    format!("{port:<12} {} {}", row.vlan, flags.join(" ")).trim_end()
                );
                last_port = row.port;
            }
        }
        "add" | "del" => {
            let words = parse_words(&words, &["pvid", "untagged", "tagged"], &[], false)?;
            let port = words.dev(&format!("vlan {action}"))?;
            let vids = words
                .vids
                .with_context(|| format!("vlan {action} needs `vid V` or `vid V1-V2`"))?;
            let edit = if action == "add" {
                Edit::VlanAdd {
                    port,
                    vids,
                    pvid: words.flags.iter().any(|f| f == "pvid"),
                    untagged: words.flags.iter().any(|f| f == "untagged"),
                }
            } else {
                if !words.flags.is_empty() {
                    bail!("vlan del takes only `dev PORT vid V[-V2]`");
                }
                Edit::VlanDel { port, vids }
            };
            let changes: Vec<Change> = ask(&call.bridge()?, &Request::Edit(edit))?;
            if call.json {
                return print_json(&changes);
            }
        }
        other => bail!("unknown vlan action `{other}` (show, add, del)"),
    }
    Ok(())
}

fn on_off(name: &str, value: &str) -> Result<bool> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => bail!("`{name}` takes on or off, not `{other}`"),
    }
}

const LINK_SETTINGS: [&str; 7] = [
    "learning",
    "flood",
    "mcast_flood",
    "bcast_flood",
    "isolated",
    "accept",
    "max_learned",
];

pub fn link(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let (action, words) = action(&call, "link", "show or set")?;
    match action.as_str() {
        "show" => {
            let words = parse_words(&words, &[], &[], false)?;
            let mut rows: Vec<LinkRow> = ask(&call.bridge()?, &Request::LinkShow)?;
            rows.retain(|r| words.dev.as_ref().is_none_or(|d| &r.port == d));
            if call.json {
                return print_json(&rows);
            }
            let state = |on: bool| if on { "on" } else { "off" };
            for row in rows {
                let kind = match row.wire_vid {
                    Some(vid) => format!("sub-interface of {} vid {vid}", row.interface),
                    None => format!("trunk on {}", row.interface),
                };
                let accept = match row.accept {
                    Accept::All => "all",
                    Accept::Untagged => "untagged",
                    Accept::Tagged => "tagged",
                };
                println!(
                    "{}: {kind}\n    pvid {} accept {accept} learning {} flood {} mcast_flood {} bcast_flood {} isolated {} max_learned {} learned {}",
                    row.port,
                    row.pvid.map_or("none".to_string(), |v| v.to_string()),
                    state(row.learning),
                    state(row.flood),
                    state(row.mcast_flood),
                    state(row.bcast_flood),
                    state(row.isolated),
                    row.max_learned,
                    row.learned
                );
            }
        }
        "set" => {
            let words = parse_words(&words, &[], &LINK_SETTINGS, false)?;
            let port = words.dev("link set")?;
            let mut changes = LinkChanges::default();
            for (name, value) in &words.settings {
                match name.as_str() {
                    "learning" => changes.learning = Some(on_off(name, value)?),
                    "flood" => changes.flood = Some(on_off(name, value)?),
                    "mcast_flood" => changes.mcast_flood = Some(on_off(name, value)?),
                    "bcast_flood" => changes.bcast_flood = Some(on_off(name, value)?),
                    "isolated" => changes.isolated = Some(on_off(name, value)?),
                    "accept" => {
                        changes.accept = Some(match value.as_str() {
                            "all" => Accept::All,
                            "untagged" => Accept::Untagged,
                            "tagged" => Accept::Tagged,
                            other => bail!("`accept` takes all, untagged or tagged, not `{other}`"),
                        })
                    }
                    "max_learned" => {
                        changes.max_learned = Some(value.parse().with_context(|| {
                            format!("`max_learned` takes a count (0: no cap), not `{value}`")
                        })?)
                    }
                    _ => unreachable!("parse_words only passes LINK_SETTINGS"),
                }
            }
            let applied: Vec<Change> = ask(
                &call.bridge()?,
                &Request::Edit(Edit::LinkSet { port, changes }),
            )?;
            if call.json {
                return print_json(&applied);
            }
        }
        other => bail!("unknown link action `{other}` (show, set)"),
    }
    Ok(())
}

/// The counters of a running bridge: live from its control socket, else
/// from the file it last published.
fn live_stats(bridge: &str) -> Result<BridgeStats> {
    match control::request::<BridgeStats>(bridge, &Request::Stats) {
        Ok(stats) => Ok(stats),
        Err(control::ClientError::NotRunning { .. }) => {
            let path = runtime::stats_path(bridge);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("no stats for bridge {bridge} ({})", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
        }
        Err(err) => Err(err.into()),
    }
}

pub fn stats(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let words = parse_words(&call.words, &[], &[], false)?;
    let bridge = call.bridge()?;
    let mut stats = live_stats(&bridge)?;
    if let Some(dev) = &words.dev {
        if !stats.ports.contains_key(dev) {
            bail!("bridge {bridge}: no port {dev}");
        }
        stats.ports.retain(|name, _| name == dev);
    }
    if call.json {
        return print_json(&stats);
    }
    print_stats(&stats);
    if call.details {
        print_details(&stats);
    }
    Ok(())
}

pub fn print_stats(stats: &BridgeStats) {
    println!(
        "bridge {}  workers {}  fdb {} entries, {} moves, {} learn_limit  no_port {}  no_buffer {}  tx_ring_full {}",
        stats.bridge,
        stats.workers,
        stats.fdb_entries,
        stats.fdb_moves,
        stats.learn_limit,
        stats.no_port,
        stats.no_buffer,
        stats.tx_ring_full
    );
    println!(
        "{:<12} {:>12} {:>14} {:>12} {:>14} {:>10}  drops",
        "port", "rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "egr_filter"
    );
    for (name, port) in &stats.ports {
        let drops: Vec<String> = port
            .drops
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect();
        println!(
            "{:<12} {:>12} {:>14} {:>12} {:>14} {:>10}  {}",
            name,
            port.rx_frames,
            port.rx_bytes,
            port.tx_frames,
            port.tx_bytes,
            port.egress_filter,
            if drops.is_empty() {
                "-".to_string()
            } else {
                drops.join(" ")
            }
        );
    }
}

fn print_details(stats: &BridgeStats) {
    println!(
        "\n{:<12} {:>12} {:>14} {:>12} {:>14}",
        "vlan", "rx_frames", "rx_bytes", "tx_frames", "tx_bytes"
    );
    for (vid, vlan) in &stats.vlans {
        let name = if *vid == 0 {
            "shared".to_string()
        } else {
            vid.to_string()
        };
        println!(
            "{:<12} {:>12} {:>14} {:>12} {:>14}",
            name, vlan.rx_frames, vlan.rx_bytes, vlan.tx_frames, vlan.tx_bytes
        );
    }
    for (name, port) in &stats.ports {
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .map(|reason| {
                let count = port.drops.get(reason.name()).copied().unwrap_or(0);
                format!("{}={count}", reason.name())
            })
            .collect();
        println!("\n{name} drops (spec X2): {}", drops.join(" "));
        let counters: Vec<String> = port
            .xdp
            .iter()
            .chain(port.xsk.iter())
            .map(|(counter, value)| format!("{counter}={value}"))
            .collect();
        if !counters.is_empty() {
            println!("{name} XDP and socket: {}", counters.join(" "));
        }
    }
}

pub fn monitor(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let mut topics = Vec::new();
    for word in &call.words {
        topics.push(match word.as_str() {
            "fdb" => Topic::Fdb,
            "vlan" => Topic::Vlan,
            "link" => Topic::Link,
            "all" => continue,
            other => bail!("unknown monitor object `{other}` (fdb, vlan, link, all)"),
        });
    }
    let json = call.json;
    let bridge = call.bridge()?;
    control::monitor(&bridge, topics, |event| {
        let line = if json {
            serde_json::to_string(&event).expect("serialisable")
        } else {
            describe_event(&event)
        };
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    })?;
    eprintln!("xbridge: bridge {bridge} stopped");
    Ok(())
}

fn describe_event(event: &Event) -> String {
    match event {
        Event::Learn { mac, vlan, port } => format!("learn {mac} dev {port} vlan {vlan}"),
        Event::Move {
            mac,
            vlan,
            from,
            to,
        } => format!("move {mac} vlan {vlan} dev {from} -> dev {to}"),
        Event::Limit { mac, vlan, port } => {
            format!("limit {mac} dev {port} vlan {vlan} not learned (FDB limit reached)")
        }
        Event::Age { mac, vlan, port } => format!("age {mac} dev {port} vlan {vlan}"),
        Event::FdbChange { port, change } => match port {
            Some(port) => format!("fdb dev {port} {change}"),
            None => format!("fdb {change}"),
        },
        Event::Config(change) => format!("config {change}"),
        Event::Lost { events } => format!("lost {events} events (monitor too slow)"),
    }
}

pub fn trace(args: RuntimeArgs) -> Result<()> {
    let call = invocation(args)?;
    let (dev, frame_words) = match call.words.split_first() {
        Some((word, rest)) if word == "dev" => {
            let (port, rest) = rest.split_first().context("`dev` needs a port name")?;
            (port.clone(), rest.to_vec())
        }
        _ => bail!("trace needs `dev PORT` first, then the frame: src MAC dst MAC [vlan V [pcp P]]... or hex BYTES"),
    };
    let frame = xbridge::trace::frame_from_words(&frame_words)?;
    let trace: Trace = ask(
        &call.bridge()?,
        &Request::Trace {
            port: dev,
            frame: xbridge::wire::hex(&frame),
        },
    )?;
    if call.json {
        return print_json(&trace);
    }
    println!(
        "frame on port {} (wire of {}): {}",
        trace.port, trace.interface, trace.frame
    );
    for step in &trace.steps {
        println!("  {:<5} {}", step.item, step.says);
    }
    match (&trace.drop_reason, trace.vlan) {
        (Some(reason), _) => println!("=> dropped ({reason}); nothing leaves"),
        (None, vlan) => {
            let copies: Vec<String> = trace
                .egress
                .iter()
                .map(|e| {
                    let tags: Vec<String> = e
                        .tags
                        .iter()
                        .map(|t| {
                            if t.pcp == 0 {
                                format!("{}", t.vid)
                            } else {
                                format!("{} pcp {}", t.vid, t.pcp)
                            }
                        })
                        .collect();
                    if tags.is_empty() {
                        format!("{} untagged", e.port)
                    } else {
                        format!("{} tagged {}", e.port, tags.join(" + "))
                    }
                })
                .collect();
            println!(
                "=> forwarded in VLAN {} to: {}",
                vlan.unwrap_or(0),
                copies.join(", ")
            );
        }
    }
    Ok(())
}

pub fn reload(args: crate::ReloadArgs, prefix: &str) -> Result<()> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {file}"))?;
    // Check locally first: a broken file is reported with its line here.
    let topology = xbridge::topology::Topology::parse(&args.file, &text)?.with_prefix(prefix)?;
    let bridge = match args.bridge {
        Some(bridge) => bridge,
        None => {
            let running = runtime::running_bridges();
            let in_file: Vec<&String> = running
                .iter()
                .filter(|name| topology.bridge(name).is_some())
                .collect();
            match in_file.as_slice() {
                [one] => (*one).clone(),
                [] if running.is_empty() => bail!("no bridge is running"),
                [] => bail!(
                    "no running bridge ({}) is declared in {file}{}",
                    running.join(", "),
                    if prefix.is_empty() {
                        " (was it started with --prefix?)"
                    } else {
                        ""
                    }
                ),
                _ => bail!("several running bridges are in {file}; pick one with --bridge"),
            }
        }
    };
    if topology.bridge(&bridge).is_none() {
        bail!("{file} has no bridge {bridge}");
    }
    let changes: Vec<Change> = ask(
        &bridge,
        &Request::Reload {
            path: file.clone(),
            text,
            prefix: prefix.to_string(),
        },
    )?;
    if !args.json {
        println!(
            "bridge {bridge}: reloaded from {file}, {} change(s)",
            changes.len()
        );
    }
    print_changes(&bridge, &changes, args.json)
}
