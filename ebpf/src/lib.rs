//! The XDP port program (C, in `c/`, compiled by `build.rs`) and the glue that
//! loads it on an interface, registers AF_XDP sockets and reads its counters.

pub mod bench;

use std::os::fd::AsRawFd;

use aya::maps::{MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;

/// The compiled XDP object, embedded so the binary needs no files at run time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xbridge.bpf.o"));

/// The most receive queues one port program can serve (`MAX_QUEUES` in C).
pub const MAX_QUEUES: u32 = 64;

/// Per-CPU counters kept by the XDP program, in the order of
/// `enum xbridge_counter` in `c/xbridge.bpf.c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpCounter {
    RxFrames = 0,
    Redirected,
    DropMalformed,
    DropPause,
    DropNoSocket,
}

impl XdpCounter {
    pub const ALL: [XdpCounter; 5] = [
        XdpCounter::RxFrames,
        XdpCounter::Redirected,
        XdpCounter::DropMalformed,
        XdpCounter::DropPause,
        XdpCounter::DropNoSocket,
    ];

    /// The name used in stats output and JSON.
    pub fn name(self) -> &'static str {
        match self {
            XdpCounter::RxFrames => "xdp_rx",
            XdpCounter::Redirected => "xdp_redirected",
            XdpCounter::DropMalformed => "xdp_drop_malformed",
            XdpCounter::DropPause => "xdp_drop_pause",
            XdpCounter::DropNoSocket => "xdp_drop_no_socket",
        }
    }
}

/// Counter totals summed over CPUs, indexed by `XdpCounter as usize`.
pub type XdpCounters = [u64; 5];

/// What went wrong while loading or driving the port program.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("cannot load the XDP program for {ifname}: {source}")]
    Load {
        ifname: String,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("cannot attach the XDP program to {ifname}: {source}")]
    Attach {
        ifname: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("the XDP object lacks {what} (build problem)")]
    Missing { what: &'static str },
    #[error("XDP map {map} on {ifname}: {source}")]
    Map {
        ifname: String,
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("queue {queue} of {ifname} is beyond the {MAX_QUEUES} queues the XDP program serves")]
    QueueOutOfRange { ifname: String, queue: u32 },
}

/// How the program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (veth supports it): the fast path.
    Driver,
    /// Generic XDP, for drivers without native support.
    Generic,
}

/// The port program loaded and attached to one interface. Dropping it
/// detaches the program and frees its maps.
pub struct PortProgram {
    ifname: String,
    mode: Option<AttachMode>,
    sockets: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    // Owns the program and its link; declared last so the maps go first.
    _ebpf: Ebpf,
}

impl std::fmt::Debug for PortProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortProgram")
            .field("ifname", &self.ifname)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PortProgram {
    /// Loads a fresh copy of the program with its own maps, not attached
    /// yet: register the sockets first, then `attach`, so no frame ever
    /// meets the program before a socket waits for it.
    pub fn load(ifname: &str) -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(|source| XdpError::Load {
            ifname: ifname.to_string(),
            source: Box::new(source),
        })?;
        let program = Self::program(&mut ebpf)?;
        program.load().map_err(|source| XdpError::Attach {
            ifname: ifname.to_string(),
            source: Box::new(source),
        })?;
        let map_err = |map, source| XdpError::Map {
            ifname: ifname.to_string(),
            map,
            source: Box::new(source),
        };
        let sockets = XskMap::try_from(
            ebpf.take_map("xsks")
                .ok_or(XdpError::Missing { what: "map xsks" })?,
        )
        .map_err(|e| map_err("xsks", e))?;
        let counters =
            PerCpuArray::try_from(ebpf.take_map("counters").ok_or(XdpError::Missing {
                what: "map counters",
            })?)
            .map_err(|e| map_err("counters", e))?;
        Ok(PortProgram {
            ifname: ifname.to_string(),
            mode: None,
            sockets,
            counters,
            _ebpf: ebpf,
        })
    }

    fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
        ebpf.program_mut("xbridge_port")
            .ok_or(XdpError::Missing {
                what: "program xbridge_port",
            })?
            .try_into()
            .map_err(|_| XdpError::Missing {
                what: "an XDP program named xbridge_port",
            })
    }

    /// Attaches the loaded program to `ifindex`, in driver mode when the
    /// driver supports it, else generic.
    pub fn attach(&mut self, ifindex: u32) -> Result<AttachMode, XdpError> {
        let ifname = self.ifname.clone();
        let program = Self::program(&mut self._ebpf)?;
        let mode = match program.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(_) => AttachMode::Driver,
            Err(_) => {
                program
                    .attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|source| XdpError::Attach {
                        ifname,
                        source: Box::new(source),
                    })?;
                AttachMode::Generic
            }
        };
        self.mode = Some(mode);
        Ok(mode)
    }

    /// How it is attached, if it is.
    pub fn mode(&self) -> Option<AttachMode> {
        self.mode
    }

    /// Sends frames received on `queue` to the AF_XDP socket `socket`.
    pub fn register_socket(&mut self, queue: u32, socket: impl AsRawFd) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange {
                ifname: self.ifname.clone(),
                queue,
            });
        }
        self.sockets
            .set(queue, socket, 0)
            .map_err(|source| XdpError::Map {
                ifname: self.ifname.clone(),
                map: "xsks",
                source: Box::new(source),
            })
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut totals = [0u64; 5];
        for (index, total) in totals.iter_mut().enumerate() {
            let per_cpu =
                self.counters
                    .get(&(index as u32), 0)
                    .map_err(|source| XdpError::Map {
                        ifname: self.ifname.clone(),
                        map: "counters",
                        source: Box::new(source),
                    })?;
            *total = per_cpu.iter().sum();
        }
        Ok(totals)
    }
}
