//! The control socket of a running bridge: a Unix socket at
//! `/run/xbridge/BRIDGE.sock` (mode 0600, root only), served by one thread
//! off the fast path. Protocol: one JSON request per line, one JSON answer
//! per line (documented in README "Runtime control").

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dataplane::Dataplane;
use crate::wire::MacAddr;

pub fn socket_path(bridge: &str) -> PathBuf {
    Path::new(crate::runtime::RUN_DIR).join(format!("{bridge}.sock"))
}

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    FdbShow,
    /// Removes dynamic entries (all, or those on `port`).
    FdbFlush {
        port: Option<String>,
    },
    /// Adds a static entry.
    FdbAdd {
        mac: String,
        port: String,
        vlan: Option<u16>,
    },
    FdbDel {
        mac: String,
        vlan: Option<u16>,
    },
    VlanShow,
}

/// One FDB entry as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRow {
    pub mac: String,
    pub vlan: u16,
    pub port: String,
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Seconds since last seen (dynamic entries).
    pub age: Option<u64>,
}

/// One port's VLANs as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanRow {
    pub port: String,
    pub vlan: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fdb: Option<Vec<FdbRow>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vlans: Option<Vec<VlanRow>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removed: Option<usize>,
    },
    Error {
        message: String,
    },
}

impl Response {
    fn done() -> Response {
        Response::Ok {
            fdb: None,
            vlans: None,
            removed: None,
        }
    }

    fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }
}

/// Applies `request` to `bridge`.
pub fn handle(bridge: &Dataplane, request: Request) -> Response {
    let config = bridge.pipeline().config();
    let port_id = |name: &str| {
        config
            .port_id(name)
            .ok_or_else(|| format!("no port {name}"))
    };
    let vid_of = |vlan: Option<u16>| -> Result<u16, String> {
        match (config.vlan_filtering, vlan) {
            (false, _) => Ok(0),
            (true, None) => Err("a bridge with vlan_filtering needs `vlan V`".into()),
            (true, Some(vid)) => crate::config::Vid::new(i64::from(vid))
                .map(|v| v.get())
                .map_err(|e| e.to_string()),
        }
    };
    let parse_mac = |text: &str| text.parse::<MacAddr>().map_err(|e| e.to_string());
    let result: Result<Response, String> = (|| match request {
        Request::FdbShow => {
            let now = bridge.now();
            let fdb = bridge
                .fdb()
                .entries()
                .into_iter()
                .map(|e| FdbRow {
                    mac: e.mac.to_string(),
                    vlan: e.vid,
                    port: config.port(e.port).name.clone(),
                    is_static: e.is_static,
                    age: (!e.is_static).then(|| now.saturating_since(e.last_seen).as_secs()),
                })
                .collect();
            Ok(Response::Ok {
                fdb: Some(fdb),
                vlans: None,
                removed: None,
            })
        }
        Request::FdbFlush { port } => {
            let only = port.as_deref().map(port_id).transpose()?;
            let mut removed = 0;
            bridge.fdb().retain(
                |e| e.is_static || only.is_some_and(|p| p != e.port),
                |_| removed += 1,
            );
            Ok(Response::Ok {
                fdb: None,
                vlans: None,
                removed: Some(removed),
            })
        }
        Request::FdbAdd { mac, port, vlan } => {
            let mac = parse_mac(&mac)?;
            if mac.is_multicast() || mac.is_zero() {
                return Err(format!(
                    "{mac}: a static entry needs a unicast, non-zero MAC"
                ));
            }
            let port = port_id(&port)?;
            let vid = vid_of(vlan)?;
            if config.vlan_filtering && !config.port(port).vlans.contains(vid) {
                return Err(format!(
                    "port {} is not a member of VLAN {vid}",
                    config.port(port).name
                ));
            }
            bridge
                .fdb()
                .add_static(mac, vid, port)
                .map_err(|e| e.to_string())?;
            Ok(Response::done())
        }
        Request::FdbDel { mac, vlan } => {
            let mac = parse_mac(&mac)?;
            let vid = vid_of(vlan)?;
            if bridge.fdb().remove(mac, vid) {
                Ok(Response::done())
            } else {
                Err(format!("no FDB entry for {mac} in VLAN {vid}"))
            }
        }
        Request::VlanShow => {
            let vlans = config
                .ports
                .iter()
                .flat_map(|p| {
                    p.vlans.iter().map(move |(vid, mode)| VlanRow {
                        port: p.name.clone(),
                        vlan: vid.get(),
                        pvid: p.pvid == Some(vid),
                        untagged: mode == crate::config::EgressMode::Untagged,
                    })
                })
                .collect();
            Ok(Response::Ok {
                fdb: None,
                vlans: Some(vlans),
                removed: None,
            })
        }
    })();
    result.unwrap_or_else(Response::error)
}

/// Serves the control socket of `bridge` until `stop` is set.
pub fn serve(
    bridge: Arc<Dataplane>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = bridge.pipeline().config().name.clone();
    let path = socket_path(&name);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(std::thread::Builder::new()
        .name(format!("xbridge-ctl-{name}"))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = answer(&bridge, stream);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let _ = std::fs::remove_file(&path);
        })
        .expect("spawning the control thread"))
}

fn answer(bridge: &Dataplane, stream: UnixStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(bridge, request),
            Err(err) => Response::error(format!("bad request: {err}")),
        };
        writeln!(
            writer,
            "{}",
            serde_json::to_string(&response).expect("serialisable")
        )?;
    }
    Ok(())
}

/// Sends one request to the running `bridge` and returns its answer.
pub fn request(bridge: &str, request: &Request) -> std::io::Result<Response> {
    let path = socket_path(bridge);
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("{}: {e} (is bridge {bridge} running?)", path.display()),
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(
        stream,
        "{}",
        serde_json::to_string(request).expect("serialisable")
    )?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line)
        .map_err(|e| std::io::Error::other(format!("bad answer from {bridge}: {e}")))
}
