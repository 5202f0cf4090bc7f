//! The Prometheus endpoint of `xbridge run --metrics ADDR`: renders bridge
//! counters in the text exposition format and serves them over plain HTTP
//! on one thread (loopback unless the user asks for more).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::BridgeStats;

/// The port used when `--metrics` names none.
pub const DEFAULT_PORT: u16 = 9417;

/// Why a metrics address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is not an address (PORT, IP:PORT or [IPv6]:PORT)")]
    Unparsable(String),
    #[error("{0} is not a loopback address: the metrics endpoint has no authentication; pass --metrics-public to serve it beyond this host")]
    NotLoopback(SocketAddr),
}

/// Parses `--metrics` (`PORT` means 127.0.0.1:PORT); a non-loopback address
/// needs `public`.
pub fn parse_address(text: &str, public: bool) -> Result<SocketAddr, AddressError> {
    let address = if let Ok(port) = text.parse::<u16>() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, DEFAULT_PORT)
    } else {
        text.parse::<SocketAddr>()
            .map_err(|_| AddressError::Unparsable(text.to_string()))?
    };
    if !address.ip().is_loopback() && !public {
        return Err(AddressError::NotLoopback(address));
    }
    Ok(address)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// All counters of `bridges` in the Prometheus text format.
pub fn render(bridges: &[BridgeStats]) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP xbridge_{name} {help}");
            let _ = writeln!(out, "# TYPE xbridge_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "xbridge_{name}{{{labels}}} {value}");
            }
        };
    type PortField = fn(&crate::stats::PortStats) -> u64;
    let port_counters: [(&str, &str, PortField); 5] = [
        ("rx_frames_total", "Frames received on a port.", |p| {
            p.rx_frames
        }),
        ("rx_bytes_total", "Bytes received on a port.", |p| {
            p.rx_bytes
        }),
        ("tx_frames_total", "Frames sent through a port.", |p| {
            p.tx_frames
        }),
        ("tx_bytes_total", "Bytes sent through a port.", |p| {
            p.tx_bytes
        }),
        (
            "egress_filtered_total",
            "Copies withheld from a port by egress filtering (spec E1).",
            |p| p.egress_filter,
        ),
    ];
    for (name, help, get) in port_counters {
        family(
            &format!("port_{name}"),
            "counter",
            help,
            &mut bridges.iter().flat_map(|b| {
                b.ports.iter().map(move |(port, stats)| {
                    (
                        format!("bridge=\"{}\",port=\"{}\"", escape(&b.bridge), escape(port)),
                        get(stats),
                    )
                })
            }),
        );
    }
    family(
        "port_drops_total",
        "counter",
        "Frames dropped on their ingress port, by reason (spec X2).",
        &mut bridges.iter().flat_map(|b| {
            b.ports.iter().flat_map(move |(port, stats)| {
                crate::pipeline::DropReason::ALL.iter().map(move |reason| {
                    (
                        format!(
                            "bridge=\"{}\",port=\"{}\",reason=\"{}\"",
                            escape(&b.bridge),
                            escape(port),
                            reason.name()
                        ),
                        stats.drops.get(reason.name()).copied().unwrap_or(0),
                    )
                })
            })
        }),
    );
    type VlanField = fn(&crate::stats::VlanStats) -> u64;
    let vlan_counters: [(&str, &str, VlanField); 4] = [
        ("rx_frames_total", "Frames admitted into a VLAN.", |v| {
            v.rx_frames
        }),
        ("rx_bytes_total", "Bytes admitted into a VLAN.", |v| {
            v.rx_bytes
        }),
        ("tx_frames_total", "Copies of a VLAN's frames sent.", |v| {
            v.tx_frames
        }),
        ("tx_bytes_total", "Bytes of a VLAN's frames sent.", |v| {
            v.tx_bytes
        }),
    ];
    for (name, help, get) in vlan_counters {
        family(
            &format!("vlan_{name}"),
            "counter",
            help,
            &mut bridges.iter().flat_map(|b| {
                b.vlans.iter().map(move |(vlan, stats)| {
                    (
                        format!("bridge=\"{}\",vlan=\"{vlan}\"", escape(&b.bridge)),
                        get(stats),
                    )
                })
            }),
        );
    }
    family(
        "xdp_total",
        "counter",
        "The XDP program's counters on a port's interface.",
        &mut bridges.iter().flat_map(|b| {
            b.ports.iter().flat_map(move |(port, stats)| {
                stats.xdp.iter().map(move |(counter, value)| {
                    (
                        format!(
                            "bridge=\"{}\",port=\"{}\",counter=\"{}\"",
                            escape(&b.bridge),
                            escape(port),
                            escape(counter)
                        ),
                        *value,
                    )
                })
            })
        }),
    );
    type BridgeField = fn(&BridgeStats) -> u64;
    let bridge_values: [(&str, &str, &str, BridgeField); 6] = [
        ("fdb_entries", "gauge", "Entries in the FDB.", |b| {
            u64::from(b.fdb_entries)
        }),
        (
            "fdb_moves_total",
            "counter",
            "FDB entries moved to another port (spec L2).",
            |b| b.fdb_moves,
        ),
        (
            "learn_limit_total",
            "counter",
            "Sources not learned because of a limit (spec L3).",
            |b| b.learn_limit,
        ),
        ("no_port_total", "counter", "Frames no port owned.", |b| {
            b.no_port
        }),
        (
            "no_buffer_total",
            "counter",
            "Copies lost for want of a free frame.",
            |b| b.no_buffer,
        ),
        (
            "tx_ring_full_total",
            "counter",
            "Copies lost to a full TX ring.",
            |b| b.tx_ring_full,
        ),
    ];
    for (name, kind, help, get) in bridge_values {
        family(
            name,
            kind,
            help,
            &mut bridges
                .iter()
                .map(|b| (format!("bridge=\"{}\"", escape(&b.bridge)), get(b))),
        );
    }
    out
}

/// Serves `GET /metrics` on `address` until `stop` is set; `collect` is
/// called for each scrape. Returns the thread and the address bound (port 0
/// picks a free one).
pub fn serve(
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    collect: impl Fn() -> Vec<BridgeStats> + Send + 'static,
) -> std::io::Result<(std::thread::JoinHandle<()>, SocketAddr)> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let thread = std::thread::Builder::new()
        .name("xbridge-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut request = [0u8; 2048];
                        let read = stream.read(&mut request).unwrap_or(0);
                        let head = String::from_utf8_lossy(&request[..read]);
                        let path = head.split_whitespace().nth(1).unwrap_or("");
                        let (status, body) = if path == "/metrics" || path == "/" {
                            ("200 OK", render(&collect()))
                        } else {
                            ("404 Not Found", "try /metrics\n".to_string())
                        };
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
        .expect("spawning the metrics thread");
    Ok((thread, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            parse_address("9100", false).unwrap(),
            "127.0.0.1:9100".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:9100", false).unwrap(),
            "[::1]:9100".parse().unwrap()
        );
        assert!(matches!(
            parse_address("0.0.0.0:9100", false),
            Err(AddressError::NotLoopback(_))
        ));
        assert!(parse_address("0.0.0.0:9100", true).is_ok());
        assert!(parse_address("nine", false).is_err());
    }

    #[test]
    fn the_text_format_has_help_type_and_labels() {
        let mut stats = BridgeStats {
            bridge: "br0".into(),
            ..BridgeStats::default()
        };
        let mut port = crate::stats::PortStats {
            rx_frames: 7,
            ..Default::default()
        };
        port.drops.insert("ingress_filter".into(), 2);
        stats.ports.insert("p1".into(), port);
        stats.vlans.insert(
            10,
            crate::stats::VlanStats {
                tx_frames: 3,
                ..Default::default()
            },
        );
        let text = render(&[stats]);
        assert!(text.contains("# TYPE xbridge_port_rx_frames_total counter"));
        assert!(text.contains("xbridge_port_rx_frames_total{bridge=\"br0\",port=\"p1\"} 7"));
        assert!(text.contains(
            "xbridge_port_drops_total{bridge=\"br0\",port=\"p1\",reason=\"ingress_filter\"} 2"
        ));
        assert!(text
            .contains("xbridge_port_drops_total{bridge=\"br0\",port=\"p1\",reason=\"no_pvid\"} 0"));
        assert!(text.contains("xbridge_vlan_tx_frames_total{bridge=\"br0\",vlan=\"10\"} 3"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
