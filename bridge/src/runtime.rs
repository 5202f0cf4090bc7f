//! Running bridges from the command line: start the dataplanes of a
//! topology, age the FDB, publish stats under `/run/xbridge/`, stop cleanly
//! on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dataplane::{Dataplane, DataplaneError, RunOptions};
use crate::stats::BridgeStats;
use crate::sys::netns;
use crate::topology::BridgeSpec;

/// Where running bridges publish their state.
pub const RUN_DIR: &str = "/run/xbridge";
const STATS_EVERY: Duration = Duration::from_millis(200);
const AGE_EVERY: Duration = Duration::from_secs(1);

pub fn stats_path(bridge: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{bridge}.stats.json"))
}

pub fn pid_path(bridge: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{bridge}.pid"))
}

/// Why bridges could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "namespace {namespace} of bridge {bridge} does not exist: run `xbridge topo up FILE` first"
    )]
    NoNamespace { bridge: String, namespace: String },
    #[error("bridge {bridge} is already running (pid {pid})")]
    AlreadyRunning { bridge: String, pid: u32 },
    #[error("{path} belongs to uid {owner}: refusing to replace another user's control socket")]
    ForeignSocket { path: PathBuf, owner: u32 },
    #[error("bridge {bridge}: {source}")]
    Start {
        bridge: String,
        #[source]
        source: DataplaneError,
    },
    #[error("{path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Whether this process runs with effective UID 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The pid recorded for a running `bridge`, if that process is alive.
pub fn running_pid(bridge: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_path(bridge))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new("/proc")
        .join(pid.to_string())
        .exists()
        .then_some(pid)
}

/// Names of bridges with a live process.
pub fn running_bridges() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".pid")
                .map(String::from)
        })
        .filter(|name| running_pid(name).is_some())
        .collect();
    names.sort();
    names
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// A set of started bridges, stopped together, each with its control socket.
#[derive(Debug)]
pub struct Running {
    bridges: Vec<Arc<Dataplane>>,
    control_stop: Arc<AtomicBool>,
    control: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts every bridge in `specs`; if one fails, the ones already
    /// started are stopped again and nothing stays attached.
    pub fn start(
        specs: &[BridgeSpec],
        workers: usize,
        cores: &[usize],
    ) -> Result<Running, RunError> {
        for spec in specs {
            let bridge = spec.config.name.clone();
            if !netns::exists(&spec.namespace) {
                return Err(RunError::NoNamespace {
                    bridge,
                    namespace: spec.namespace.clone(),
                });
            }
            if let Some(pid) = running_pid(&bridge) {
                return Err(RunError::AlreadyRunning { bridge, pid });
            }
            let socket = crate::control::socket_path(&bridge);
            if let Some(owner) = crate::control::foreign_owner(&socket) {
                return Err(RunError::ForeignSocket {
                    path: socket,
                    owner,
                });
            }
        }
        std::fs::create_dir_all(RUN_DIR).map_err(|source| RunError::State {
            path: RUN_DIR.into(),
            source,
        })?;
        let control_stop = Arc::new(AtomicBool::new(false));
        let mut running = Running {
            bridges: Vec::new(),
            control_stop: control_stop.clone(),
            control: Vec::new(),
        };
        for spec in specs {
            let options = RunOptions {
                namespace: spec.namespace.clone(),
                workers,
                cores: cores.to_vec(),
            };
            let dataplane = Dataplane::start(spec.config.clone(), &options).map_err(|source| {
                RunError::Start {
                    bridge: spec.config.name.clone(),
                    source,
                }
            })?;
            let pid_file = pid_path(&spec.config.name);
            write_atomically(&pid_file, &format!("{}\n", std::process::id())).map_err(
                |source| RunError::State {
                    path: pid_file,
                    source,
                },
            )?;
            let dataplane = Arc::new(dataplane);
            let control =
                crate::control::serve(dataplane.clone(), control_stop.clone()).map_err(|source| {
                    RunError::State {
                        path: crate::control::socket_path(&spec.config.name),
                        source,
                    }
                });
            running.bridges.push(dataplane);
            running.control.push(control?);
        }
        Ok(running)
    }

    /// Serves Prometheus metrics of every bridge at `address` until stop;
    /// returns the address bound.
    pub fn serve_metrics(
        &mut self,
        address: std::net::SocketAddr,
    ) -> std::io::Result<std::net::SocketAddr> {
        let bridges = self.bridges.clone();
        let (handle, bound) =
            crate::metrics::serve(address, self.control_stop.clone(), move || {
                bridges.iter().map(|b| b.stats()).collect()
            })?;
        self.control.push(handle);
        Ok(bound)
    }

    pub fn bridges(&self) -> &[Arc<Dataplane>] {
        &self.bridges
    }

    /// Ages and publishes stats until `stop` is set.
    pub fn serve(&self, stop: &AtomicBool) {
        let mut last_age = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_age.elapsed() >= AGE_EVERY {
                for bridge in &self.bridges {
                    bridge.age();
                }
                last_age = Instant::now();
            }
            self.publish();
            std::thread::sleep(STATS_EVERY);
        }
    }

    fn publish(&self) {
        for bridge in &self.bridges {
            let stats = bridge.stats();
            if let Ok(text) = serde_json::to_string_pretty(&stats) {
                if let Err(err) = write_atomically(&stats_path(&stats.bridge), &text) {
                    tracing::warn!("cannot publish stats of {}: {err}", stats.bridge);
                }
            }
        }
    }

    /// Stops every bridge and removes what it published; returns the final
    /// stats.
    pub fn stop(mut self) -> Vec<BridgeStats> {
        self.stop_control();
        std::mem::take(&mut self.bridges)
            .into_iter()
            .map(|bridge| {
                let stats = match Arc::try_unwrap(bridge) {
                    Ok(bridge) => bridge.stop(),
                    // Only the control threads share it, and they are gone.
                    Err(shared) => shared.stats(),
                };
                remove_published(&stats.bridge);
                stats
            })
            .collect()
    }

    fn stop_control(&mut self) {
        self.control_stop.store(true, Ordering::Relaxed);
        for handle in self.control.drain(..) {
            let _ = handle.join();
        }
    }
}

fn remove_published(bridge: &str) {
    let _ = std::fs::remove_file(crate::control::socket_path(bridge));
    let _ = std::fs::remove_file(pid_path(bridge));
    let _ = std::fs::remove_file(stats_path(bridge));
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_control();
        for bridge in &self.bridges {
            remove_published(&bridge.pipeline().config().name.clone());
        }
    }
}

/// A flag set by SIGINT and SIGTERM.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    Ok(stop)
}
