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
/// How long a port must stay silent after a frame before we move on.
const QUIET: Duration = Duration::from_millis(150);

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
            std::thread::sleep(Duration::from_millis(300));
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
                let mut emitted = Emitted::new();
                let mut last = Instant::now();
                let deadline = Instant::now() + Duration::from_secs(2);
                while last.elapsed() < QUIET && Instant::now() < deadline {
                    for (interface, socket) in &sockets {
                        while let Ok(Some(got)) = socket.receive(Duration::from_millis(5)) {
                            if interface == &frame.interface && got.bytes == frame.bytes {
                                continue;
                            }
                            emitted
                                .entry(interface.clone())
                                .or_default()
                                .push(got.bytes);
                            last = Instant::now();
                        }
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
