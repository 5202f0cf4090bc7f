//! The AF_XDP dataplane: attaches the port program to every interface of a
//! bridge, runs one pinned worker per core, each with its own UMEM and one
//! socket per interface, and moves frames as descriptors in batches. Learning
//! lands in the shared FDB; ageing and stats run on the control thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use xbridge_ebpf::{AttachMode, PortProgram, XdpCounter};

use crate::config::{BridgeConfig, PortId};
use crate::events::{Event, EventHub, RawEvent};
use crate::fdb::{Fdb, Millis};
use crate::pipeline::{InterfaceId, Pipeline, Verdict};
use crate::reconfig::{self, Change, Edit, EditError};
use crate::stats::{BridgeStats, WorkerCounters};
use crate::sys::xsk::{Desc, XskSet, RING_SIZE};
use crate::sys::{self, netns};
use crate::wire;

/// Frames taken from one RX ring per round.
pub const BATCH: usize = 64;
/// Idle rounds a worker spins before it sleeps in poll(2).
const SPIN_ROUNDS: u32 = 2000;
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How often a worker copies the kernel's socket counters.
const STATISTICS_EVERY_MS: u64 = 100;

/// What stopped the dataplane from starting.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("this kernel cannot open AF_XDP sockets ({0}); xbridge needs CONFIG_XDP_SOCKETS")]
    NoAfXdp(std::io::Error),
    #[error("network namespace {namespace} of bridge {bridge}: {source}")]
    Namespace {
        bridge: String,
        namespace: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {ifname} of bridge {bridge} not found in namespace {namespace}: {source}")]
    MissingInterface {
        bridge: String,
        ifname: String,
        namespace: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Xdp(#[from] xbridge_ebpf::XdpError),
    #[error("worker {worker}: {source}")]
    Socket {
        worker: usize,
        #[source]
        source: crate::sys::xsk::XskError,
    },
    #[error("static FDB: {0}")]
    Fdb(#[from] crate::fdb::FdbError),
    #[error("worker {0} stopped before it was ready")]
    WorkerLost(usize),
}

/// One interface the bridge serves, with its queues.
#[derive(Debug)]
struct Attached {
    name: String,
    ifindex: u32,
    queues: u32,
    program: PortProgram,
}

/// A running bridge. Dropping it (or `stop`) stops the workers, closes the
/// sockets and detaches every XDP program.
///
/// The configuration is an immutable `Pipeline` snapshot: workers load the
/// current one once per round (no lock), and a change builds a whole new
/// snapshot and swaps it in, so a worker sees either the old or the new
/// configuration, never a mix.
#[derive(Debug)]
pub struct Dataplane {
    pipeline: Arc<ArcSwap<Pipeline>>,
    /// Serialises writers of `pipeline` (control side only; workers never
    /// take it), so two changes cannot both start from the same snapshot.
    writer: std::sync::Mutex<()>,
    events: Arc<EventHub>,
    fdb: Arc<Fdb>,
    counters: Vec<Arc<WorkerCounters>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    attached: Vec<Attached>,
    origin: Instant,
    namespace: String,
}

/// How a bridge should run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub namespace: String,
    pub workers: usize,
    /// Pin worker i to core `cores[i % len]`; empty: no pinning.
    pub cores: Vec<usize>,
}

struct WorkerSetup {
    index: usize,
    namespace: String,
    sockets: Vec<(String, u32, u32)>,
    /// For each socket, which interface it serves.
    socket_interface: Vec<usize>,
    core: Option<usize>,
}

impl Dataplane {
    /// Attaches to every interface of `config` in `options.namespace` and
    /// starts the workers. On error nothing stays attached.
    pub fn start(config: BridgeConfig, options: &RunOptions) -> Result<Dataplane, DataplaneError> {
        sys::af_xdp_available().map_err(DataplaneError::NoAfXdp)?;
        let pipeline = Arc::new(Pipeline::new(config));
        let fdb = Arc::new(Fdb::new(pipeline.config().fdb_max_learned));
        pipeline.install_static_entries(&fdb)?;
        let bridge = pipeline.config().name.clone();
        let namespace = options.namespace.clone();

        // Load the port program for each interface (not attached yet).
        let interfaces: Vec<String> = pipeline.interface_names().map(String::from).collect();
        let mut attached = Vec::new();
        let mut indexes = Vec::new();
        netns::within(&namespace, || {
            for name in &interfaces {
                let ifindex = sys::if_index(name).map_err(|source| {
                    std::io::Error::other(DataplaneError::MissingInterface {
                        bridge: bridge.clone(),
                        ifname: name.clone(),
                        namespace: namespace.clone(),
                        source,
                    })
                })?;
                let queues = sys::rx_queue_count(name).unwrap_or(1);
                let program = PortProgram::load(name).map_err(std::io::Error::other)?;
                indexes.push(ifindex);
                attached.push(Attached {
                    name: name.clone(),
                    ifindex,
                    queues,
                    program,
                });
            }
            Ok(())
        })
        .map_err(|err| unwrap_io(err, &bridge, &namespace))?;

        // Queue q of every interface belongs to worker q % workers; a worker
        // needs a socket on every interface, so no more workers than the
        // interface with the fewest queues has.
        let fewest_queues = attached.iter().map(|a| a.queues).min().unwrap_or(1) as usize;
        let workers = options.workers.clamp(1, fewest_queues.max(1));
        if workers < options.workers {
            tracing::warn!(
                "bridge {bridge}: running {workers} worker(s), not {}: an interface has only {fewest_queues} queue(s)",
                options.workers
            );
        }

        let stop = Arc::new(AtomicBool::new(false));
        let origin = Instant::now();
        let events = Arc::new(EventHub::new(workers));
        let snapshot = Arc::new(ArcSwap::new(pipeline.clone()));
        let mut handles = Vec::new();
        let mut counters = Vec::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..workers {
            let mut sockets = Vec::new();
            let mut socket_interface = Vec::new();
            for (interface, attached) in attached.iter().enumerate() {
                for queue in (index as u32..attached.queues).step_by(workers) {
                    sockets.push((attached.name.clone(), indexes[interface], queue));
                    socket_interface.push(interface);
                }
            }
            let setup = WorkerSetup {
                index,
                namespace: namespace.clone(),
                sockets,
                socket_interface,
                core: (!options.cores.is_empty())
                    .then(|| options.cores[index % options.cores.len()]),
            };
            let worker_counters = Arc::new(WorkerCounters::new(
                pipeline.config().ports.len(),
                attached.len(),
            ));
            counters.push(worker_counters.clone());
            let context = WorkerContext {
                pipeline: snapshot.clone(),
                index,
                events: events.clone(),
                fdb: fdb.clone(),
                counters: worker_counters,
                stop: stop.clone(),
                origin,
            };
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("xbridge-w{index}"))
                .spawn(move || worker_main(setup, context, ready))
                .expect("spawning a worker thread");
            handles.push(handle);
        }
        drop(ready_tx);

        let mut dataplane = Dataplane {
            pipeline: snapshot,
            writer: std::sync::Mutex::new(()),
            events,
            fdb,
            counters,
            stop,
            workers: handles,
            attached,
            origin,
            namespace,
        };
        // Register each worker's sockets in the port programs' XSKMAPs.
        for _ in 0..workers {
            let message = ready_rx.recv().map_err(|_| DataplaneError::WorkerLost(0))?;
            let (worker, sockets) = message?;
            for (interface, queue, fd) in sockets {
                let attached = &mut dataplane.attached[interface];
                attached.program.register_socket(queue, BorrowedRaw(fd))?;
                tracing::debug!(
                    "worker {worker}: {} queue {queue} registered",
                    attached.name
                );
            }
        }
        // Every socket waits in its XSKMAP: now frames may come.
        let namespace = dataplane.namespace.clone();
        netns::within(&namespace, || {
            for attached in &mut dataplane.attached {
                attached
                    .program
                    .attach(attached.ifindex)
                    .map_err(std::io::Error::other)?;
            }
            Ok(())
        })
        .map_err(|err| unwrap_io(err, &bridge, &namespace))?;
        Ok(dataplane)
    }

    /// The configuration in force now.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.load_full()
    }

    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// Applies a runtime edit (`xbridge vlan add|del`, `link set`).
    pub fn edit(&self, edit: &Edit) -> Result<Vec<Change>, EditError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.pipeline();
        let next = reconfig::edited(current.config(), edit)?;
        Ok(self.apply(&current, next))
    }

    /// Replaces the configuration with `next` (`xbridge reload`): all or
    /// nothing.
    pub fn reload(&self, next: BridgeConfig) -> Result<Vec<Change>, EditError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.pipeline();
        reconfig::check_reload(current.config(), &next)?;
        let next = next.validate()?;
        // The only step that can fail, undone on error: before the swap.
        reconfig::install_statics(&self.fdb, &next)
            .map_err(|err| EditError::NotReloadable(err.to_string()))?;
        Ok(self.apply(&current, next))
    }

    /// Swaps in `next` (already validated, same ports as `current`), then
    /// tidies the FDB as Linux does and reports what changed.
    fn apply(&self, current: &Pipeline, next: BridgeConfig) -> Vec<Change> {
        let old = current.config();
        let changes = reconfig::differences(old, &next);
        let next = Arc::new(Pipeline::new(next));
        self.pipeline.store(next.clone());
        reconfig::tidy_fdb(&self.fdb, old, next.config());
        for change in &changes {
            tracing::info!("bridge {}: config {change}", next.config().name);
            self.events.post(Event::Config(change.clone()));
        }
        changes
    }

    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// How each interface's program is attached.
    pub fn attach_modes(&self) -> Vec<(String, AttachMode, u32)> {
        self.attached
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.program.mode()?, a.queues)))
            .collect()
    }

    /// The time on the clock workers learn with.
    pub fn now(&self) -> Millis {
        Millis(self.origin.elapsed().as_millis() as u64)
    }

    /// Ages the FDB (spec L4); call about once a second.
    pub fn age(&self) -> usize {
        let pipeline = self.pipeline();
        let config = pipeline.config();
        self.fdb.age(self.now(), config.ageing_time, |entry| {
            tracing::debug!("fdb: {} vlan {} aged out", entry.mac, entry.vid);
            self.events.post(Event::Age {
                mac: entry.mac.to_string(),
                vlan: entry.vid,
                port: config.port(entry.port).name.clone(),
            });
        })
    }

    /// Totals over all workers, with the XDP programs' counters.
    pub fn stats(&self) -> BridgeStats {
        let pipeline = self.pipeline();
        let config = pipeline.config();
        let names: Vec<String> = config.ports.iter().map(|p| p.name.clone()).collect();
        let workers: Vec<&WorkerCounters> = self.counters.iter().map(|c| c.as_ref()).collect();
        let mut stats = BridgeStats::collect(&config.name, &names, &workers);
        for attached in &self.attached {
            let Ok(values) = attached.program.counters() else {
                continue;
            };
            // The XDP counters belong to the interface: show them on the
            // port that is the interface itself, else on its first port.
            let owner = config
                .ports
                .iter()
                .find(|p| p.name == attached.name)
                .or_else(|| config.ports.iter().find(|p| p.interface == attached.name));
            if let Some(port) = owner.and_then(|p| stats.ports.get_mut(&p.name)) {
                for counter in XdpCounter::ALL {
                    port.xdp
                        .insert(counter.name().to_string(), values[counter as usize]);
                }
                let interface = self
                    .attached
                    .iter()
                    .position(|a| a.name == attached.name)
                    .unwrap_or(0);
                let sum = |get: fn(&crate::stats::SocketCounters) -> u64| -> u64 {
                    self.counters
                        .iter()
                        .map(|w| get(&w.sockets[interface]))
                        .sum()
                };
                for (name, value) in [
                    ("xsk_rx_dropped", sum(|s| s.rx_dropped.get())),
                    ("xsk_rx_ring_full", sum(|s| s.rx_ring_full.get())),
                    (
                        "xsk_rx_fill_ring_empty",
                        sum(|s| s.rx_fill_ring_empty.get()),
                    ),
                    ("xsk_tx_invalid_descs", sum(|s| s.tx_invalid_descs.get())),
                ] {
                    port.xsk.insert(name.to_string(), value);
                }
            }
        }
        stats.fdb_entries = self.fdb.len() as u32;
        stats.fdb_moves = self.fdb.moves();
        stats.learn_limit = self.fdb.limit_hits();
        stats
    }

    /// Stops the workers and detaches everything.
    pub fn stop(mut self) -> BridgeStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.halt();
        // `attached` drops after this: the programs detach once the workers
        // (and their sockets) are gone.
    }
}

/// A raw fd lent to `XskMap::set`, which only reads its number.
struct BorrowedRaw(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for BorrowedRaw {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

fn unwrap_io(err: std::io::Error, bridge: &str, namespace: &str) -> DataplaneError {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<DataplaneError>())
    {
        let inner = err.into_inner().expect("checked above");
        return *inner.downcast::<DataplaneError>().expect("checked above");
    }
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<xbridge_ebpf::XdpError>())
    {
        let inner = err.into_inner().expect("checked above");
        return DataplaneError::Xdp(
            *inner
                .downcast::<xbridge_ebpf::XdpError>()
                .expect("checked above"),
        );
    }
    DataplaneError::Namespace {
        bridge: bridge.to_string(),
        namespace: namespace.to_string(),
        source: err,
    }
}

/// What a worker shares with the rest.
struct WorkerContext {
    pipeline: Arc<ArcSwap<Pipeline>>,
    /// This worker's number (its event ring).
    index: usize,
    events: Arc<EventHub>,
    fdb: Arc<Fdb>,
    counters: Arc<WorkerCounters>,
    stop: Arc<AtomicBool>,
    origin: Instant,
}

type Ready = Result<(usize, Vec<(usize, u32, std::os::fd::RawFd)>), DataplaneError>;

fn worker_main(setup: WorkerSetup, context: WorkerContext, ready: mpsc::Sender<Ready>) {
    if let Some(core) = setup.core {
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    let opened = netns::enter(&setup.namespace)
        .map_err(|source| DataplaneError::Namespace {
            bridge: context.pipeline.load().config().name.clone(),
            namespace: setup.namespace.clone(),
            source,
        })
        .and_then(|()| {
            XskSet::open(&setup.sockets).map_err(|source| DataplaneError::Socket {
                worker: setup.index,
                source,
            })
        });
    let xsk = match opened {
        Ok(xsk) => xsk,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let registrations = setup
        .socket_interface
        .iter()
        .enumerate()
        .map(|(socket, interface)| (*interface, setup.sockets[socket].2, xsk.fd(socket)))
        .collect();
    if ready.send(Ok((setup.index, registrations))).is_err() {
        return;
    }
    Worker::new(xsk, setup.socket_interface, context).run();
}

/// The fast path of one worker.
struct Worker {
    xsk: XskSet,
    /// Interface served by each socket.
    socket_interface: Vec<usize>,
    /// The socket each interface transmits on (its first).
    tx_socket: Vec<usize>,
    /// The interface each port leaves through.
    port_interface: Vec<usize>,
    pending: Vec<Vec<Desc>>,
    context: WorkerContext,
}

impl Worker {
    fn new(xsk: XskSet, socket_interface: Vec<usize>, context: WorkerContext) -> Worker {
        // Ports and interfaces never change while a bridge runs (a reload
        // that would change them is refused), so this mapping stays valid.
        let pipeline = context.pipeline.load_full();
        let interfaces = pipeline.interface_names().count();
        let tx_socket = (0..interfaces)
            .map(|i| {
                socket_interface
                    .iter()
                    .position(|s| *s == i)
                    .expect("a socket per interface")
            })
            .collect();
        let port_interface = (0..pipeline.config().ports.len())
            .map(|p| usize::from(pipeline.interface_of(PortId(p as u16)).0))
            .collect();
        let pending = (0..socket_interface.len())
            .map(|_| Vec::with_capacity(RING_SIZE as usize))
            .collect();
        Worker {
            xsk,
            socket_interface,
            tx_socket,
            port_interface,
            pending,
            context,
        }
    }

    fn run(mut self) {
        let mut batch = [Desc::default(); BATCH];
        let mut idle_rounds = 0u32;
        let mut next_statistics = 0u64;
        let mut poll_set: Vec<libc::pollfd> = self.xsk.fds().map(sys::poll_entry).collect();
        let sockets = self.socket_interface.len();
        while !self.context.stop.load(Ordering::Relaxed) {
            let now = Millis(self.context.origin.elapsed().as_millis() as u64);
            // One configuration for the whole round: a change lands between rounds.
            let pipeline = self.context.pipeline.load();
            let mut received = 0;
            for socket in 0..sockets {
                self.xsk.reap_completions(socket);
                self.xsk.refill(socket);
                let count = self.xsk.receive(socket, &mut batch);
                received += count;
                for (index, desc) in batch[..count].iter().enumerate() {
                    if let Some(next) = batch[..count].get(index + 1) {
                        self.xsk.prefetch(*next);
                    }
                    self.forward(&pipeline, self.socket_interface[socket], *desc, now);
                }
            }
            self.flush();
            if now.0 >= next_statistics {
                self.publish_socket_statistics();
                next_statistics = now.0 + STATISTICS_EVERY_MS;
            }
            if received > 0 {
                self.context.counters.batches.add(1);
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds >= SPIN_ROUNDS {
                    for socket in 0..sockets {
                        self.xsk.kick(socket);
                    }
                    let _ = sys::wait_readable(&mut poll_set, IDLE_POLL);
                }
            }
        }
        // Frames still pending are simply dropped with the UMEM.
    }

    /// Copies the kernel's socket counters into ours (one getsockopt per
    /// socket every STATISTICS_EVERY_MS, never per frame).
    fn publish_socket_statistics(&self) {
        let sockets = &self.context.counters.sockets;
        let mut totals = vec![crate::sys::xsk::SocketStats::default(); sockets.len()];
        for (socket, interface) in self.socket_interface.iter().enumerate() {
            if let Some(stats) = self.xsk.statistics(socket) {
                let total = &mut totals[*interface];
                total.rx_dropped += stats.rx_dropped;
                total.rx_ring_full += stats.rx_ring_full;
                total.rx_fill_ring_empty += stats.rx_fill_ring_empty;
                total.tx_invalid_descs += stats.tx_invalid_descs;
            }
        }
        for (counters, total) in sockets.iter().zip(totals) {
            counters.set(total);
        }
    }

    fn flush(&mut self) {
        for socket in 0..self.pending.len() {
            if self.pending[socket].is_empty() {
                continue;
            }
            let sent = self.xsk.transmit(socket, &self.pending[socket]);
            let unsent = self.pending[socket].len() - sent;
            if unsent > 0 {
                self.context.counters.tx_ring_full.add(unsent as u64);
            }
            self.pending[socket].clear();
        }
    }

    fn queue_tx(&mut self, port: PortId, vid: u16, desc: Desc) {
        let socket = self.tx_socket[self.port_interface[port.index()]];
        if self.pending[socket].len() == self.pending[socket].capacity() {
            let sent = self.xsk.transmit(socket, &self.pending[socket]);
            let unsent = self.pending[socket].len() - sent;
            self.context.counters.tx_ring_full.add(unsent as u64);
            self.pending[socket].clear();
        }
        self.pending[socket].push(desc);
        let counters = &self.context.counters.ports[port.index()];
        counters.tx_frames.add(1);
        counters.tx_bytes.add(u64::from(desc.len));
        let vlan = &self.context.counters.vlans[usize::from(vid & 0x0fff)];
        vlan.tx_frames.add(1);
        vlan.tx_bytes.add(u64::from(desc.len));
    }

    fn forward(&mut self, pipeline: &Pipeline, interface: usize, desc: Desc, now: Millis) {
        let context = &self.context;
        let decision = pipeline.decide(
            InterfaceId(interface as u16),
            self.xsk.frame(desc),
            &context.fdb,
            now,
        );
        let counters = &context.counters;
        for port in decision.egress_filtered.iter() {
            counters.ports[port.index()].egress_filtered.add(1);
        }
        if let Some(ingress) = decision.ingress {
            let port = &counters.ports[ingress.index()];
            port.rx_frames.add(1);
            port.rx_bytes.add(u64::from(desc.len));
        }
        // Monitors hear of new, moved or refused entries; a full ring drops
        // the event, never the frame.
        if context.events.listening() {
            let learned = decision.learn.zip(decision.ingress);
            let frame = wire::EthernetFrame::new_checked(self.xsk.frame(desc));
            if let (Some((outcome, port)), Ok(frame)) = (learned, frame) {
                if let Some(event) = RawEvent::of_learning(outcome, frame.src(), decision.vid, port)
                {
                    context.events.ring(context.index).push(event);
                }
            }
        }
        let forward = match decision.verdict {
            Verdict::Drop { port, reason } => {
                match port {
                    // One reason per frame, on its ingress port (spec X2).
                    Some(port) => counters.ports[port.index()].drops[reason.index()].add(1),
                    None => counters.no_port.add(1),
                }
                self.xsk.release(desc);
                return;
            }
            Verdict::Forward(forward) => forward,
        };
        let vlan = &counters.vlans[usize::from(forward.vid & 0x0fff)];
        vlan.rx_frames.add(1);
        vlan.rx_bytes.add(u64::from(desc.len));

        let copies = forward.egress.len();
        for (nth, port) in forward.egress.iter().enumerate() {
            let edit = pipeline.egress_edit(&forward, port);
            let out = if nth + 1 < copies {
                // Every copy but the last is a fresh frame.
                self.xsk
                    .copy_into_free(desc, |src, dst| wire::copy_edited(src, &edit, dst).ok())
            } else if edit.is_identity() {
                Some(desc)
            } else {
                let headroom = desc.headroom();
                let chunk_base = desc.addr - headroom as u64;
                match wire::apply_in_place(
                    self.xsk.frame_mut(desc),
                    headroom,
                    desc.len as usize,
                    &edit,
                ) {
                    Ok((start, len)) => Some(Desc {
                        addr: chunk_base + start as u64,
                        len: len as u32,
                    }),
                    Err(_) => {
                        self.xsk.release(desc);
                        None
                    }
                }
            };
            match out {
                Some(out) => self.queue_tx(port, forward.vid, out),
                None => self.context.counters.no_buffer.add(1),
            }
        }
    }
}
