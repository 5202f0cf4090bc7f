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

/// One field of a stats type as a metric: name, type, help, getter.
type Field<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Writes one metric family: its HELP and TYPE lines, then its samples.
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP xbridge_{name} {help}");
    let _ = writeln!(out, "# TYPE xbridge_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "xbridge_{name}{{{labels}}} {value}");
    }
}

/// One family per field, one sample per labelled subject.
fn families<T>(out: &mut String, prefix: &str, subjects: &[(String, &T)], fields: &[Field<T>]) {
    for (name, kind, help, get) in fields {
        family(
            out,
            &format!("{prefix}{name}"),
            kind,
            help,
            subjects
                .iter()
                .map(|(labels, subject)| (labels.clone(), get(subject))),
        );
    }
}

/// All counters of `bridges` in the Prometheus text format.
pub fn render(bridges: &[BridgeStats]) -> String {
    let mut out = String::new();
    let bridge_labels: Vec<(String, &BridgeStats)> = bridges
        .iter()
        .map(|b| (format!("bridge=\"{}\"", escape(&b.bridge)), b))
        .collect();
    let ports: Vec<(String, &crate::stats::PortStats)> = bridge_labels
        .iter()
        .flat_map(|(labels, b)| {
            b.ports
                .iter()
                .map(move |(port, stats)| (format!("{labels},port=\"{}\"", escape(port)), stats))
        })
        .collect();
    let vlans: Vec<(String, &crate::stats::VlanStats)> = bridge_labels
        .iter()
        .flat_map(|(labels, b)| {
            b.vlans
                .iter()
                .map(move |(vlan, stats)| (format!("{labels},vlan=\"{vlan}\""), stats))
        })
        .collect();

    families(
        &mut out,
        "port_",
        &ports,
        &[
            (
                "rx_frames_total",
                "counter",
                "Frames received on a port.",
                |p| p.rx_frames,
            ),
            (
                "rx_bytes_total",
                "counter",
                "Bytes received on a port.",
                |p| p.rx_bytes,
            ),
            (
                "tx_frames_total",
                "counter",
                "Frames sent through a port.",
                |p| p.tx_frames,
            ),
            (
                "tx_bytes_total",
                "counter",
                "Bytes sent through a port.",
                |p| p.tx_bytes,
            ),
            (
                "egress_filtered_total",
                "counter",
                "Copies withheld from a port by egress filtering (spec E1).",
                |p| p.egress_filter,
            ),
        ],
    );
    family(
        &mut out,
        "port_drops_total",
        "counter",
        "Frames dropped on their ingress port, by reason (spec X2).",
        ports.iter().flat_map(|(labels, stats)| {
            crate::pipeline::DropReason::ALL.iter().map(move |reason| {
                (
                    format!("{labels},reason=\"{}\"", reason.name()),
                    stats.drops.get(reason.name()).copied().unwrap_or(0),
                )
            })
        }),
    );
    families(
        &mut out,
        "vlan_",
        &vlans,
        &[
            (
                "rx_frames_total",
                "counter",
                "Frames admitted into a VLAN.",
                |v| v.rx_frames,
            ),
            (
                "rx_bytes_total",
                "counter",
                "Bytes admitted into a VLAN.",
                |v| v.rx_bytes,
            ),
            (
                "tx_frames_total",
                "counter",
                "Copies of a VLAN's frames sent.",
                |v| v.tx_frames,
            ),
            (
                "tx_bytes_total",
                "counter",
                "Bytes of a VLAN's frames sent.",
                |v| v.tx_bytes,
            ),
        ],
    );
    family(
        &mut out,
        "xdp_total",
        "counter",
        "The XDP program's counters on a port's interface.",
        ports.iter().flat_map(|(labels, stats)| {
            stats.xdp.iter().map(move |(counter, value)| {
                (format!("{labels},counter=\"{}\"", escape(counter)), *value)
            })
        }),
    );
    families(
        &mut out,
        "",
        &bridge_labels,
        &[
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
        ],
    );
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
