//! The benchmark's XDP programs (`c/xbridge_bench.bpf.c`): the live-frames
//! generator and the sink, with their maps decoded into plain values.

use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

use crate::XdpError;

static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xbridge_bench.bpf.o"));

/// Streams (generator CPUs) the sink tracks (`MAX_STREAMS` in C).
pub const MAX_STREAMS: usize = 64;
/// Latency histogram buckets (`HIST_BUCKETS` in C).
pub const HIST_BUCKETS: usize = 512;
/// Bytes of `struct stream_state` (spin lock + padding + five u64).
const STREAM_STATE_LEN: usize = 48;

fn load(what: &'static str) -> Result<Ebpf, XdpError> {
    Ebpf::load(OBJECT).map_err(|source| XdpError::Load {
        ifname: what.to_string(),
        source: Box::new(source),
    })
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or(XdpError::Missing { what: name })?
        .try_into()
        .map_err(|_| XdpError::Missing { what: name })
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |source| XdpError::Map {
        ifname: "bench".into(),
        map,
        source: Box::new(source),
    }
}

/// The generator program, loaded (not attached: BPF_PROG_RUN drives it).
pub struct Generator {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").finish_non_exhaustive()
    }
}

impl Generator {
    /// Loads the generator; its frames go out of `target_ifindex`, cycling
    /// the UDP source port through `flows` ports from `base_port`, one every
    /// `interval_ns` (0: as fast as it can).
    pub fn load(
        target_ifindex: u32,
        flows: u32,
        base_port: u16,
        interval_ns: u64,
    ) -> Result<Generator, XdpError> {
        let mut ebpf = load("generator")?;
        xdp(&mut ebpf, "xbridge_gen")?
            .load()
            .map_err(|source| XdpError::Attach {
                ifname: "generator".into(),
                source: Box::new(source),
            })?;
        let mut config: Array<_, [u8; 24]> =
            Array::try_from(ebpf.map_mut("gen_config").ok_or(XdpError::Missing {
                what: "map gen_config",
            })?)
            .map_err(map_err("gen_config"))?;
        let mut value = [0u8; 24];
        value[0..4].copy_from_slice(&target_ifindex.to_ne_bytes());
        value[4..8].copy_from_slice(&flows.max(1).to_ne_bytes());
        value[8..10].copy_from_slice(&base_port.to_ne_bytes());
        value[16..24].copy_from_slice(&interval_ns.to_ne_bytes());
        config.set(0, value, 0).map_err(map_err("gen_config"))?;
        Ok(Generator { ebpf })
    }

    /// Frames the program really sent (redirected), over all CPUs.
    pub fn sent(&self) -> Result<u64, XdpError> {
        let state: PerCpuArray<&MapData, [u8; 16]> =
            PerCpuArray::try_from(self.ebpf.map("gen_state").ok_or(XdpError::Missing {
                what: "map gen_state",
            })?)
            .map_err(map_err("gen_state"))?;
        let per_cpu = state.get(&0, 0).map_err(map_err("gen_state"))?;
        Ok(per_cpu
            .iter()
            .map(|raw| u64::from_ne_bytes(raw[0..8].try_into().expect("8 bytes")))
            .sum())
    }

    /// The program, for BPF_PROG_RUN.
    pub fn program_fd(&mut self) -> Result<BorrowedFd<'_>, XdpError> {
        let program = xdp(&mut self.ebpf, "xbridge_gen")?;
        let fd = program.fd().map_err(|source| XdpError::Attach {
            ifname: "generator".into(),
            source: Box::new(source),
        })?;
        Ok(fd.as_fd())
    }
}

/// One stream's sequence checks, as the sink saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub highest: u64,
    pub received: u64,
    pub reordered: u64,
    pub duplicates: u64,
}

/// What the sink counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounts {
    pub frames: u64,
    pub bytes: u64,
    pub foreign: u64,
    pub streams: Vec<StreamCounts>,
    /// Latency histogram, `HIST_BUCKETS` counts (bucket layout in C).
    pub latency: Vec<u64>,
}

/// The sink program attached to one interface; dropping it detaches.
pub struct Sink {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    /// Loads a fresh sink (zeroed maps) and attaches it to `ifindex` (of the
    /// caller's network namespace), in driver mode where possible.
    pub fn attach(ifname: &str, ifindex: u32) -> Result<Sink, XdpError> {
        let mut ebpf = load("sink")?;
        let program = xdp(&mut ebpf, "xbridge_sink")?;
        let attach_err = |source| XdpError::Attach {
            ifname: ifname.to_string(),
            source: Box::new(source),
        };
        program.load().map_err(attach_err)?;
        if program
            .attach_to_if_index(ifindex, XdpMode::Driver)
            .is_err()
        {
            program
                .attach_to_if_index(ifindex, XdpMode::Skb)
                .map_err(attach_err)?;
        }
        Ok(Sink { ebpf })
    }

    pub fn counts(&self) -> Result<SinkCounts, XdpError> {
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("sink_counters").ok_or(XdpError::Missing {
                what: "map sink_counters",
            })?)
            .map_err(map_err("sink_counters"))?;
        let sum = |index: u32| -> Result<u64, XdpError> {
            Ok(counters
                .get(&index, 0)
                .map_err(map_err("sink_counters"))?
                .iter()
                .sum())
        };
        let mut counts = SinkCounts {
            frames: sum(0)?,
            bytes: sum(1)?,
            foreign: sum(2)?,
            ..SinkCounts::default()
        };
        let streams: Array<&MapData, [u8; STREAM_STATE_LEN]> =
            Array::try_from(self.ebpf.map("sink_streams").ok_or(XdpError::Missing {
                what: "map sink_streams",
            })?)
            .map_err(map_err("sink_streams"))?;
        for index in 0..MAX_STREAMS as u32 {
            let raw = streams.get(&index, 0).map_err(map_err("sink_streams"))?;
            let word = |n: usize| {
                u64::from_ne_bytes(raw[8 + 8 * n..16 + 8 * n].try_into().expect("8 bytes"))
            };
            counts.streams.push(StreamCounts {
                highest: word(0),
                received: word(2),
                reordered: word(3),
                duplicates: word(4),
            });
        }
        let latency: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("sink_latency").ok_or(XdpError::Missing {
                what: "map sink_latency",
            })?)
            .map_err(map_err("sink_latency"))?;
        for bucket in 0..HIST_BUCKETS as u32 {
            counts.latency.push(
                latency
                    .get(&bucket, 0)
                    .map_err(map_err("sink_latency"))?
                    .iter()
                    .sum(),
            );
        }
        Ok(counts)
    }
}
