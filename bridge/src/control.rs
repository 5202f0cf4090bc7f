//! The control socket of a running bridge: a Unix socket at
//! `/run/xbridge/BRIDGE.sock` (mode 0600, and only root or the bridge's own
//! user is answered), served by one thread off the fast path. Protocol: one
//! JSON request per line, one JSON answer per line; `monitor` then keeps the
//! connection and streams one JSON event per line (README "Runtime
//! control"). Every configuration change goes through `Dataplane::edit` or
//! `Dataplane::reload`, which swap in a whole new snapshot.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Accept, EgressMode, PortKind};
use crate::dataplane::Dataplane;
use crate::events::{Event, Topic};
use crate::reconfig::Edit;
use crate::wire::MacAddr;

pub fn socket_path(bridge: &str) -> PathBuf {
    Path::new(crate::runtime::RUN_DIR).join(format!("{bridge}.sock"))
}

/// Whether a process of `uid` may control a bridge (or serve one we talk
/// to): root, or the same user as this process.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == crate::sys::effective_uid()
}

/// The owner of an existing file at `path` that this process does not own:
/// a socket there is not ours to replace.
pub fn foreign_owner(path: &Path) -> Option<u32> {
    let owner = std::fs::symlink_metadata(path).ok()?.uid();
    (owner != crate::sys::effective_uid()).then_some(owner)
}

/// How often the control thread looks for connections and hands out events.
const TICK: Duration = Duration::from_millis(20);

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    FdbShow,
    /// Removes entries on `port` (all ports if none) in `vlan` (all if
    /// none): dynamic ones, static ones, or both.
    FdbFlush {
        port: Option<String>,
        #[serde(default)]
        vlan: Option<u16>,
        #[serde(default = "yes")]
        dynamic: bool,
        #[serde(default, rename = "static")]
        include_static: bool,
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
    LinkShow,
    /// `vlan add|del`, `link set`.
    Edit(Edit),
    /// Replaces the bridge's configuration with its section of a topology
    /// file (`text`, read by the client from `path`).
    Reload {
        path: String,
        text: String,
        #[serde(default)]
        prefix: String,
    },
    Stats,
    /// Explains what the bridge would do with `frame` (hex) entering `port`.
    Trace {
        port: String,
        frame: String,
    },
    /// Streams events of `topics` (empty: all) until the client hangs up.
    Monitor {
        #[serde(default)]
        topics: Vec<Topic>,
    },
}

fn yes() -> bool {
    true
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

/// One port's settings as shown to users (`xbridge link show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRow {
    pub port: String,
    pub interface: String,
    /// The sub-interface's wire VID (`IF.N` ports).
    pub wire_vid: Option<u16>,
    pub pvid: Option<u16>,
    pub accept: Accept,
    pub learning: bool,
    pub flood: bool,
    pub mcast_flood: bool,
    pub bcast_flood: bool,
    pub isolated: bool,
    /// 0: no per-port cap.
    pub max_learned: u32,
    /// Dynamic FDB entries learned on the port now.
    pub learned: u32,
}

/// The answer to a request: `{"status":"ok","data":...}` or
/// `{"status":"error","message":...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    Ok {
        #[serde(default)]
        data: serde_json::Value,
    },
    Error {
        message: String,
    },
}

impl Response {
    fn with(data: impl Serialize) -> Response {
        Response::Ok {
            data: serde_json::to_value(data).expect("serialisable"),
        }
    }

    fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }
}

/// Applies `request` (anything but `Monitor`) to `bridge`.
pub fn handle(bridge: &Dataplane, request: Request) -> Response {
    let pipeline = bridge.pipeline();
    let config = pipeline.config();
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
    let fdb_event = |port: Option<String>, change: String| {
        bridge.events().post(Event::FdbChange { port, change });
    };
    let result: Result<Response, String> = (|| match request {
        Request::FdbShow => {
            let now = bridge.now();
            let rows: Vec<FdbRow> = bridge
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
            Ok(Response::with(rows))
        }
        Request::FdbFlush {
            port,
            vlan,
            dynamic,
            include_static,
        } => {
            let only = port.as_deref().map(port_id).transpose()?;
            let in_vlan = vlan.map(|v| vid_of(Some(v))).transpose()?;
            let mut removed = 0usize;
            bridge.fdb().retain(
                |e| {
                    let kind = if e.is_static { include_static } else { dynamic };
                    !(kind
                        && only.is_none_or(|p| p == e.port)
                        && in_vlan.is_none_or(|v| v == e.vid))
                },
                |_| removed += 1,
            );
            fdb_event(port, format!("flush: {removed} entries removed"));
            Ok(Response::with(removed))
        }
        Request::FdbAdd { mac, port, vlan } => {
            let entry = crate::config::StaticEntry {
                mac: parse_mac(&mac)?,
                // 0: the shared VLAN of a bridge without filtering.
                vid: crate::config::Vid::new(i64::from(vid_of(vlan)?)).ok(),
                port: port_id(&port)?,
            };
            config.check_static(&entry).map_err(|e| e.to_string())?;
            let (mac, vid) = crate::reconfig::static_key(config, &entry);
            bridge
                .fdb()
                .add_static(mac, vid, entry.port)
                .map_err(|e| e.to_string())?;
            fdb_event(Some(port), format!("static {mac} vlan {vid} added"));
            Ok(Response::with(()))
        }
        Request::FdbDel { mac, vlan } => {
            let mac = parse_mac(&mac)?;
            let vid = vid_of(vlan)?;
            let entry = bridge.fdb().get(mac, vid);
            match entry {
                Some(entry) if bridge.fdb().remove(mac, vid) => {
                    fdb_event(
                        Some(config.port(entry.port).name.clone()),
                        format!("{mac} vlan {vid} deleted"),
                    );
                    Ok(Response::with(()))
                }
                _ => Err(format!("no FDB entry for {mac} in VLAN {vid}")),
            }
        }
        Request::VlanShow => {
            let rows: Vec<VlanRow> = config
                .ports
                .iter()
                .flat_map(|p| {
                    p.vlans.iter().map(move |(vid, mode)| VlanRow {
                        port: p.name.clone(),
                        vlan: vid.get(),
                        pvid: p.pvid == Some(vid),
                        untagged: mode == EgressMode::Untagged,
                    })
                })
                .collect();
            Ok(Response::with(rows))
        }
        Request::LinkShow => {
            let rows: Vec<LinkRow> = config
                .ports
                .iter()
                .enumerate()
                .map(|(index, p)| LinkRow {
                    port: p.name.clone(),
                    interface: p.interface.clone(),
                    wire_vid: match p.kind {
                        PortKind::Trunk => None,
                        PortKind::SubInterface { wire_vid } => Some(wire_vid.get()),
                    },
                    pvid: p.pvid.map(|v| v.get()),
                    accept: p.accept,
                    learning: p.flags.learning,
                    flood: p.flags.flood,
                    mcast_flood: p.flags.mcast_flood,
                    bcast_flood: p.flags.bcast_flood,
                    isolated: p.flags.isolated,
                    max_learned: p.flags.fdb_max_learned,
                    learned: bridge.fdb().learned_on(crate::config::PortId(index as u16)),
                })
                .collect();
            Ok(Response::with(rows))
        }
        Request::Edit(edit) => {
            let changes = bridge.edit(&edit).map_err(|e| e.to_string())?;
            Ok(Response::with(changes))
        }
        Request::Reload { path, text, prefix } => {
            let topology = crate::topology::Topology::parse(Path::new(&path), &text)
                .and_then(|t| t.with_prefix(&prefix))
                .map_err(|e| e.to_string())?;
            let name = &config.name;
            let spec = topology
                .bridge(name)
                .ok_or_else(|| format!("{path} has no bridge {name}"))?;
            if spec.namespace != bridge.namespace() {
                return Err(format!(
                    "{path} puts bridge {name} in namespace {}, it runs in {}: that needs a restart",
                    spec.namespace,
                    bridge.namespace()
                ));
            }
            let changes = bridge
                .reload(spec.config.clone())
                .map_err(|e| format!("{path}: {e}"))?;
            Ok(Response::with(changes))
        }
        Request::Stats => Ok(Response::with(bridge.stats())),
        Request::Trace { port, frame } => {
            let bytes = crate::wire::unhex(&frame).ok_or("the frame is not hex")?;
            let trace = crate::trace::trace(&pipeline, bridge.fdb(), &port, &bytes, bridge.now())
                .map_err(|e| e.to_string())?;
            Ok(Response::with(trace))
        }
        Request::Monitor { .. } => Err("monitor needs its own connection".into()),
    })();
    result.unwrap_or_else(Response::error)
}

/// A connection streaming events.
struct Subscriber {
    stream: UnixStream,
    topics: Vec<Topic>,
}

/// Serves the control socket of `bridge` until `stop` is set.
pub fn serve(
    bridge: Arc<Dataplane>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = bridge.pipeline().config().name.clone();
    let path = socket_path(&name);
    if let Some(owner) = foreign_owner(&path) {
        return Err(std::io::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} exists and belongs to uid {owner}: refusing to replace another user's socket",
                path.display()
            ),
        ));
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(std::thread::Builder::new()
        .name(format!("xbridge-ctl-{name}"))
        .spawn(move || {
            let mut subscribers: Vec<Subscriber> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Ok(Some(subscriber)) = answer(&bridge, stream) {
                            subscribers.push(subscriber);
                            bridge.events().set_listening(true);
                        }
                        continue;
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(err) => tracing::debug!("control socket of {name}: {err}"),
                }
                if !subscribers.is_empty() {
                    publish(&bridge, &mut subscribers);
                    if subscribers.is_empty() {
                        bridge.events().set_listening(false);
                    }
                }
                std::thread::sleep(TICK);
            }
            let _ = std::fs::remove_file(&path);
        })
        .expect("spawning the control thread"))
}

/// Hands the events recorded since the last tick to every subscriber and
/// forgets those that hung up or cannot keep up.
fn publish(bridge: &Dataplane, subscribers: &mut Vec<Subscriber>) {
    let events = bridge.events().drain(bridge.pipeline().config());
    subscribers.retain_mut(|subscriber| {
        let mut probe = [0u8; 64];
        match subscriber.stream.read(&mut probe) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        let mut text = String::new();
        for event in events.iter().filter(|e| e.shown_for(&subscriber.topics)) {
            text += &serde_json::to_string(event).expect("serialisable");
            text.push('\n');
        }
        text.is_empty() || subscriber.stream.write_all(text.as_bytes()).is_ok()
    });
}

fn answer(bridge: &Dataplane, stream: UnixStream) -> std::io::Result<Option<Subscriber>> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let reply = |writer: &mut UnixStream, response: &Response| {
        writeln!(
            writer,
            "{}",
            serde_json::to_string(response).expect("serialisable")
        )
    };
    let peer = crate::sys::peer_uid(&stream)?;
    if !trusted(peer) {
        reply(
            &mut writer,
            &Response::error(format!(
                "permission denied: uid {peer} may not control this bridge"
            )),
        )?;
        return Ok(None);
    }
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let response = match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(Request::Monitor { topics }) => {
                reply(&mut writer, &Response::with(()))?;
                writer.set_nonblocking(true)?;
                return Ok(Some(Subscriber {
                    stream: writer,
                    topics,
                }));
            }
            Ok(request) => handle(bridge, request),
            Err(err) => Response::error(format!("bad request: {err}")),
        };
        reply(&mut writer, &response)?;
    }
}

/// Why a request did not reach a bridge or got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{path}: no such control socket (is bridge {bridge} running? `xbridge run FILE` starts it)"
    )]
    NotRunning { bridge: String, path: PathBuf },
    #[error("{path}: permission denied: control sockets are root-only (run as root)")]
    PermissionDenied { path: PathBuf },
    #[error("{path} belongs to uid {owner}, neither root nor you: refusing to talk to another user's socket")]
    ForeignSocket { path: PathBuf, owner: u32 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bridge {bridge}: {message}")]
    Refused { bridge: String, message: String },
    #[error("bridge {bridge} sent an answer xbridge does not understand: {detail}")]
    BadAnswer { bridge: String, detail: String },
}

/// Connects to `bridge`'s control socket after checking who owns it.
pub fn connect(bridge: &str) -> Result<UnixStream, ClientError> {
    let path = socket_path(bridge);
    let io = |source: std::io::Error| match source.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::NotRunning {
            bridge: bridge.to_string(),
            path: path.clone(),
        },
        ErrorKind::PermissionDenied => ClientError::PermissionDenied { path: path.clone() },
        _ => ClientError::Io {
            path: path.clone(),
            source,
        },
    };
    let owner = std::fs::symlink_metadata(&path).map_err(io)?.uid();
    if !trusted(owner) {
        return Err(ClientError::ForeignSocket { path, owner });
    }
    let stream = UnixStream::connect(&path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    Ok(stream)
}

fn send(bridge: &str, stream: &mut UnixStream, request: &Request) -> Result<(), ClientError> {
    writeln!(
        stream,
        "{}",
        serde_json::to_string(request).expect("serialisable")
    )
    .map_err(|source| ClientError::Io {
        path: socket_path(bridge),
        source,
    })
}

fn read_answer(bridge: &str, reader: &mut impl BufRead) -> Result<serde_json::Value, ClientError> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|source| ClientError::Io {
            path: socket_path(bridge),
            source,
        })?;
    match serde_json::from_str(&line) {
        Ok(Response::Ok { data }) => Ok(data),
        Ok(Response::Error { message }) => Err(ClientError::Refused {
            bridge: bridge.to_string(),
            message,
        }),
        Err(err) => Err(ClientError::BadAnswer {
            bridge: bridge.to_string(),
            detail: if line.is_empty() {
                "no answer".into()
            } else {
                err.to_string()
            },
        }),
    }
}

/// Sends one request to the running `bridge` and returns the data of its
/// answer, typed as the caller expects.
pub fn request<T: serde::de::DeserializeOwned>(
    bridge: &str,
    request: &Request,
) -> Result<T, ClientError> {
    let mut stream = connect(bridge)?;
    send(bridge, &mut stream, request)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let data = read_answer(bridge, &mut BufReader::new(stream))?;
    serde_json::from_value(data).map_err(|err| ClientError::BadAnswer {
        bridge: bridge.to_string(),
        detail: err.to_string(),
    })
}

/// Subscribes to `bridge`'s events and calls `each` for every one until
/// the bridge stops (or `each` returns false).
pub fn monitor(
    bridge: &str,
    topics: Vec<Topic>,
    mut each: impl FnMut(Event) -> bool,
) -> Result<(), ClientError> {
    let mut stream = connect(bridge)?;
    send(bridge, &mut stream, &Request::Monitor { topics })?;
    let io = |source| ClientError::Io {
        path: socket_path(bridge),
        source,
    };
    stream.set_read_timeout(None).map_err(io)?;
    let mut reader = BufReader::new(stream);
    read_answer(bridge, &mut reader)?;
    for line in reader.lines() {
        let line = line.map_err(io)?;
        let event: Event = serde_json::from_str(&line).map_err(|err| ClientError::BadAnswer {
            bridge: bridge.to_string(),
            detail: err.to_string(),
        })?;
        if !each(event) {
            break;
        }
    }
    Ok(())
}
