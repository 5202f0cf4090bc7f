//! Runs inside the conformance VM: builds a Linux bridge (vlan_filtering 1)
//! from a scenario, sends its frames one by one through veth pairs and
//! reports, for each, what every port emitted; prints the outcome as JSON
//! between markers on the console. Not for use outside that VM.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use xbridge::conformance::{Emitted, EmittedHex, Outcome, Scenario};
use xbridge::sys::packet::PacketSocket;

const IP: &str = "/sbin/ip";
const BRIDGE: &str = "/sbin/bridge";
/// A veth pair outside the bridge that carries the barrier's sentinels.
const CLOCK: (&str, &str) = ("xclk0", "xclk1");
/// Give up on a sentinel after this long (the VM is slow, not that slow).
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until every frame the bridge emitted for the last test frame has
/// reached the sockets. The VM has one CPU, so received frames go through
/// one backlog queue in order: a sentinel queued after the test frame is
/// processed after it, and a second one after the copies the bridge queued
/// while processing it.
fn barrier(send: &PacketSocket, receive: &PacketSocket, serial: &mut u64) -> Result<(), String> {
    for _ in 0..2 {
        *serial += 1;
        let sentinel = xbridge::wire::FrameBuilder::new(
            xbridge::wire::MacAddr::BROADCAST,
            xbridge::wire::MacAddr([2, 0xee, 0, 0, 0, 1]),
        )
        .ethertype(0x88b6)
        .payload(&serial.to_be_bytes())
        .build();
        send.send(&sentinel).map_err(|e| format!("sentinel: {e}"))?;
        let deadline = Instant::now() + SENTINEL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receive.receive(left) {
                Ok(Some(got)) if got.bytes == sentinel => break,
                Ok(Some(_)) => continue,
                Ok(None) => return Err("a sentinel never arrived".into()),
                Err(e) => return Err(format!("sentinel: {e}")),
            }
        }
    }
    Ok(())
}

/// The bridge's dynamic (learned) FDB entries on its ports.
fn learned() -> Result<Vec<xbridge::conformance::FdbRow>, String> {
    let out = Command::new(BRIDGE)
        .args(["-j", "fdb", "show", "br", "br0"])
        .output()
        .map_err(|e| format!("bridge fdb show: {e}"))?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bridge fdb show: {e}"))?;
    let mut rows = Vec::new();
    for entry in entries {
        let dynamic = entry
            .get("state")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .is_empty();
        let on_port = entry.get("master").and_then(|m| m.as_str()) == Some("br0");
        let flags = entry
            .get("flags")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        if !dynamic || !on_port || flags.iter().any(|f| f == "self") {
            continue;
        }
        let (Some(mac), Some(port)) = (
            entry.get("mac").and_then(|m| m.as_str()),
            entry.get("ifname").and_then(|i| i.as_str()),
        ) else {
            continue;
        };
        let vlan = entry.get("vlan").and_then(|v| v.as_u64()).unwrap_or(0) as u16;
        rows.push((mac.to_string(), vlan, port.to_string()));
    }
    rows.sort();
    Ok(rows)
}

fn clock() -> Result<(PacketSocket, PacketSocket), String> {
    let _ = run(IP, &["link", "del", CLOCK.0]);
    run(
        IP,
        &[
            "link", "add", "name", CLOCK.0, "type", "veth", "peer", "name", CLOCK.1,
        ],
    )?;
    for dev in [CLOCK.0, CLOCK.1] {
        run(IP, &["link", "set", "dev", dev, "up"])?;
    }
    let send = PacketSocket::open(CLOCK.0).map_err(|e| format!("{}: {e}", CLOCK.0))?;
    let receive = PacketSocket::open(CLOCK.1).map_err(|e| format!("{}: {e}", CLOCK.1))?;
    Ok((send, receive))
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
        ))
    }
}

fn build(scenario: &Scenario) -> Result<(), String> {
    for path in [
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
    ] {
        let _ = std::fs::write(path, "1");
    }
    run(
        IP,
        &[
            "link",
            "add",
            "name",
            "br0",
            "type",
            "bridge",
            "vlan_filtering",
            "1",
            "vlan_default_pvid",
            "0",
            "mcast_snooping",
            "0",
        ],
    )?;
    for interface in scenario.interfaces() {
        let host = format!("h{interface}");
        run(
            IP,
            &[
                "link", "add", "name", &interface, "type", "veth", "peer", "name", &host,
            ],
        )?;
        for dev in [&interface, &host] {
            run(IP, &["link", "set", "dev", dev, "up"])?;
        }
    }
    for port in &scenario.ports {
        if let Some((lower, vid)) = port.name.split_once('.') {
            run(
                IP,
                &[
                    "link", "add", "link", lower, "name", &port.name, "type", "vlan", "id", vid,
                ],
            )?;
            run(IP, &["link", "set", "dev", &port.name, "up"])?;
        }
        run(IP, &["link", "set", "dev", &port.name, "master", "br0"])?;
        let mut vlans = port.vlans.clone();
        // Linux has no PVID outside the member set: the closest is an
        // untagged member (a known deviation, matched by rule).
        if let Some(pvid) = port.pvid.filter(|p| !vlans.iter().any(|(v, _)| v == p)) {
            vlans.push((pvid, true));
        }
        for (vid, untagged) in vlans {
            let vid = vid.to_string();
            let mut args = vec![
                "vlan",
                "add",
                "dev",
                port.name.as_str(),
                "vid",
                vid.as_str(),
            ];
            if port.pvid.map(|p| p.to_string()) == Some(vid.clone()) {
                args.push("pvid");
            }
            if untagged {
                args.push("untagged");
            }
            run(BRIDGE, &args)?;
        }
    }
    run(IP, &["link", "set", "dev", "br0", "up"])
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/scenario.json".into());
    let result = (|| -> Result<Vec<Outcome>, String> {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let scenarios: Vec<Scenario> =
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        let mut outcomes = Vec::new();
        let (clock_send, clock_receive) = clock()?;
        let mut serial = 0u64;
        for scenario in &scenarios {
            // One bridge at a time: a clean slate per scenario.
            let _ = run(IP, &["link", "del", "br0"]);
            for interface in scenario.interfaces() {
                let _ = run(IP, &["link", "del", &interface]);
            }
            build(scenario)?;
            let sockets: BTreeMap<String, PacketSocket> = scenario
                .interfaces()
                .into_iter()
                .map(|i| {
                    let socket =
                        PacketSocket::open(&format!("h{i}")).map_err(|e| format!("h{i}: {e}"))?;
                    Ok((i, socket))
                })
                .collect::<Result<_, String>>()?;
            // Links come up; IPv6 is off, so nothing else should speak.
            std::thread::sleep(Duration::from_millis(100));
            for socket in sockets.values() {
                socket.drain();
            }
            let mut frames = Vec::new();
            for frame in &scenario.frames {
                for socket in sockets.values() {
                    socket.drain();
                }
                let sender = sockets
                    .get(&frame.interface)
                    .ok_or_else(|| format!("no interface {}", frame.interface))?;
                sender
                    .send(&frame.bytes)
                    .map_err(|e| format!("send: {e}"))?;
                barrier(&clock_send, &clock_receive, &mut serial)?;
                let mut emitted = Emitted::new();
                for (interface, socket) in &sockets {
                    // Our own transmissions are PACKET_OUTGOING and never
                    // come back here; a copy the bridge sends out of the
                    // interface the frame came in on (sub-interface in,
                    // trunk out) may be byte-identical, and it counts.
                    while let Ok(Some(got)) = socket.receive(Duration::ZERO) {
                        emitted
                            .entry(interface.clone())
                            .or_default()
                            .push(got.bytes);
                    }
                }
                for list in emitted.values_mut() {
                    list.sort();
                }
                frames.push(EmittedHex::from(&emitted));
            }
            outcomes.push(Outcome {
                scenario: scenario.name.clone(),
                frames,
                fdb: learned()?,
            });
        }
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            println!("XBRIDGE-PROBE-BEGIN");
            println!(
                "{}",
                serde_json::to_string(&outcomes).expect("serialisable")
            );
            println!("XBRIDGE-PROBE-END");
        }
        Err(err) => println!("XBRIDGE-PROBE-ERROR {}", err.replace('\n', " | ")),
    }
}
