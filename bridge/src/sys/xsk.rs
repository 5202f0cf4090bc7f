//! One worker's AF_XDP sockets: a UMEM it alone owns, shared by one socket per
//! port interface (the worker's queue on each), so a frame moves between
//! ports as a descriptor. Wraps `xdpilone`; nothing outside this file knows
//! that crate.
//!
//! Ring rules that matter here: every frame is in exactly one place — the free
//! stack, a fill ring, the kernel, an RX ring, a pending TX list or a
//! completion ring — and only frames in the free stack or just received may
//! be read or written by us.

use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

/// Size of one UMEM frame; a power of two so a chunk's base is
/// `addr & !(FRAME_SIZE-1)`. The kernel puts received data 256 bytes in (XDP
/// headroom), leaving 1792 bytes: a 1500-MTU frame with two tags pushed.
/// Larger frames are dropped by the kernel (counted as `xsk_rx_dropped`).
pub const FRAME_SIZE: u32 = 2048;
/// Where a frame we write ourselves starts inside its chunk: room to push tags.
pub const TX_HEADROOM: u32 = 256;
/// Descriptors per ring (fill, completion, RX, TX). Deep rings absorb the
/// bursts veth delivers (its NAPI runs on the sender's core, in slices):
/// measured with `xbridge bench`, 8192 raised the zero-loss rate ~3x over 2048.
pub const RING_SIZE: u32 = 8192;
/// Frames kept in each fill ring; below the ring size, as xdpilone wants.
pub const FILL_TARGET: u32 = 4096;

/// Frames the kernel sends per sendto() in copy mode (TX_BATCH_SIZE).
const COPY_MODE_TX_BUDGET: usize = 32;

const XDP_COPY: u16 = 1 << 1;
const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// A frame descriptor: where in the UMEM and how long.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
}

impl Desc {
    fn chunk(self) -> u64 {
        self.addr & !u64::from(FRAME_SIZE - 1)
    }

    /// Bytes between the chunk's start and the frame: room to push tags.
    pub fn headroom(self) -> usize {
        (self.addr - self.chunk()) as usize
    }
}

/// The kernel's counters for one AF_XDP socket (XDP_STATISTICS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Dropped for other reasons (e.g. frame larger than a chunk).
    pub rx_dropped: u64,
    /// The RX ring was full: the worker did not keep up.
    pub rx_ring_full: u64,
    /// No frame in the fill ring to receive into.
    pub rx_fill_ring_empty: u64,
    pub tx_invalid_descs: u64,
}

/// What failed while opening the sockets.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("cannot map {bytes} bytes of UMEM: {source}")]
    Map {
        bytes: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("AF_XDP {step} on {ifname} queue {queue}: {message}")]
    Socket {
        step: &'static str,
        ifname: String,
        queue: u32,
        message: String,
    },
}

/// Anonymous memory for the UMEM, unmapped on drop.
struct UmemArea {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory owned by one worker; moving the owner to
// another thread moves the only handle to it.
unsafe impl Send for UmemArea {}

impl UmemArea {
    fn new(len: usize) -> Result<UmemArea, XskError> {
        // SAFETY: anonymous private mapping; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(XskError::Map {
                bytes: len,
                source: std::io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns NULL on success");
        Ok(UmemArea { base, len })
    }

    fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, self.len)
    }

    /// The whole area. `&mut self` makes this the only live view from our side;
    /// the kernel only touches frames we handed it (fill/TX rings), which the
    /// ring discipline above keeps us from reading meanwhile.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `base..base+len` is our live mapping (unmapped only in Drop);
        // the exclusive borrow of self prevents a second view from us.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the sockets that
        // registered it are dropped before (field order of `XskSet`), and the
        // kernel keeps its own page references until then anyway.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// One socket of the set: the rings for one (interface, queue).
struct XskPort {
    device: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    _user: User,
    fd: RawFd,
}

/// A worker's sockets, one per port interface, over one UMEM.
pub struct XskSet {
    // Field order is drop order: sockets first, then the UMEM, then its memory.
    ports: Vec<XskPort>,
    _umem: Umem,
    free: Vec<u64>,
    area: UmemArea,
}

impl std::fmt::Debug for XskSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSet")
            .field("ports", &self.ports.len())
            .field("free_frames", &self.free.len())
            .finish()
    }
}

impl XskSet {
    /// Opens one socket per `(ifname, ifindex, queue)`, all sharing a fresh
    /// UMEM, in copy mode with need_wakeup, and gives each fill ring frames.
    pub fn open(interfaces: &[(String, u32, u32)]) -> Result<XskSet, XskError> {
        // Every frame in flight (RX ring, pending, TX ring, completion ring)
        // left a fill ring first, so full fill rings plus one ring of slack
        // (flood copies, refills while others are in flight) is enough.
        let frames = interfaces.len() as u32 * FILL_TARGET + RING_SIZE;
        let area = UmemArea::new(frames as usize * FRAME_SIZE as usize)?;
        let config = UmemConfig {
            fill_size: RING_SIZE,
            complete_size: RING_SIZE,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is page aligned (mmap), `frames * FRAME_SIZE` bytes
        // long, and outlives the Umem (field order of XskSet).
        let umem = unsafe { Umem::new(config, area.as_slice_ptr()) }.map_err(|errno| {
            XskError::Socket {
                step: "UMEM registration",
                ifname: interfaces.first().map(|i| i.0.clone()).unwrap_or_default(),
                queue: 0,
                message: errno.to_string(),
            }
        })?;
        let mut ports = Vec::with_capacity(interfaces.len());
        for (position, (ifname, ifindex, queue)) in interfaces.iter().enumerate() {
            let fail = |step: &'static str, errno: xdpilone::Errno| XskError::Socket {
                step,
                ifname: ifname.clone(),
                queue: *queue,
                message: errno.to_string(),
            };
            let mut info = IfInfo::invalid();
            info.from_ifindex(*ifindex)
                .map_err(|e| fail("interface lookup", e))?;
            info.set_queue(*queue);
            // The first socket is the UMEM's own; the others share it and
            // must bind with no flags of their own (the kernel takes them
            // from the owner).
            let (socket, bind_flags) = if position == 0 {
                (
                    Socket::with_shared(&info, &umem),
                    XDP_COPY | XDP_USE_NEED_WAKEUP,
                )
            } else {
                (Socket::new(&info), 0)
            };
            let socket = socket.map_err(|e| fail("socket", e))?;
            let device = umem
                .fq_cq(&socket)
                .map_err(|e| fail("fill/completion rings", e))?;
            let socket_config = SocketConfig {
                rx_size: NonZeroU32::new(RING_SIZE),
                tx_size: NonZeroU32::new(RING_SIZE),
                bind_flags,
            };
            let user = umem
                .rx_tx(&socket, &socket_config)
                .map_err(|e| fail("rx/tx rings", e))?;
            umem.bind(&user).map_err(|e| fail("bind", e))?;
            let rx = user.map_rx().map_err(|e| fail("rx ring map", e))?;
            let tx = user.map_tx().map_err(|e| fail("tx ring map", e))?;
            let fd = user.as_raw_fd();
            ports.push(XskPort {
                device,
                rx,
                tx,
                _user: user,
                fd,
            });
        }
        let free = (0..u64::from(frames))
            .map(|i| i * u64::from(FRAME_SIZE))
            .collect();
        let mut set = XskSet {
            ports,
            _umem: umem,
            free,
            area,
        };
        for port in 0..set.ports.len() {
            set.refill(port);
        }
        Ok(set)
    }

    /// The kernel's counters of socket `port` (a getsockopt: call it rarely).
    pub fn statistics(&self, port: usize) -> Option<SocketStats> {
        let stats = self.ports[port]._user.statistics_v2().ok()?;
        Some(SocketStats {
            rx_dropped: stats.rx_dropped,
            rx_ring_full: stats.rx_ring_full,
            rx_fill_ring_empty: stats.rx_fill_ring_empty_descs,
            tx_invalid_descs: stats.tx_invalid_descs,
        })
    }

    /// The socket of interface `port`, for the XDP program's XSKMAP.
    pub fn fd(&self, port: usize) -> RawFd {
        self.ports[port].fd
    }

    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.ports.iter().map(|port| port.fd)
    }

    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Moves sent frames from `port`'s completion ring to the free stack.
    pub fn reap_completions(&mut self, port: usize) -> u32 {
        let mut done = self.ports[port].device.complete(RING_SIZE);
        let mut count = 0;
        while let Some(addr) = done.read() {
            self.free.push(addr & !u64::from(FRAME_SIZE - 1));
            count += 1;
        }
        done.release();
        count
    }

    /// Tops `port`'s fill ring up to `FILL_TARGET` from the free stack, and
    /// wakes the kernel if it asked.
    pub fn refill(&mut self, port: usize) -> u32 {
        let port_rings = &mut self.ports[port];
        let in_ring = port_rings.device.pending();
        let wanted = FILL_TARGET
            .saturating_sub(in_ring)
            .min(self.free.len() as u32);
        let mut given = 0;
        while given < wanted {
            let mut fill = port_rings.device.fill(wanted - given);
            let room = fill.capacity();
            if room == 0 {
                break;
            }
            let start = self.free.len() - room as usize;
            let inserted = fill.insert(self.free[start..].iter().copied());
            fill.commit();
            self.free.truncate(self.free.len() - inserted as usize);
            given += inserted;
            if inserted == 0 {
                break;
            }
        }
        if port_rings.device.needs_wakeup() {
            port_rings.device.wake();
        }
        given
    }

    /// Takes up to `out.len()` received frames from `port`.
    pub fn receive(&mut self, port: usize, out: &mut [Desc]) -> usize {
        let mut rx = self.ports[port].rx.receive(out.len() as u32);
        let mut count = 0;
        while count < out.len() {
            let Some(desc) = rx.read() else { break };
            out[count] = Desc {
                addr: desc.addr,
                len: desc.len,
            };
            count += 1;
        }
        rx.release();
        count
    }

    /// The bytes of a frame we hold, and the area before it (headroom).
    pub fn frame_mut(&mut self, desc: Desc) -> &mut [u8] {
        let chunk = desc.chunk() as usize;
        &mut self.area.bytes_mut()[chunk..chunk + FRAME_SIZE as usize]
    }

    /// Asks the CPU to start loading the frame's first cache line: the
    /// kernel wrote it on another core, so the first read would stall.
    pub fn prefetch(&self, desc: Desc) {
        let offset = desc.addr as usize;
        if offset >= self.area.len {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint; the address lies inside our
        // live mapping (checked above) and is never dereferenced here.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.area.base.as_ptr().add(offset).cast::<i8>());
        }
    }

    /// The frame's bytes only.
    pub fn frame(&mut self, desc: Desc) -> &[u8] {
        let start = desc.headroom();
        let len = (desc.len as usize).min(FRAME_SIZE as usize - start);
        &self.frame_mut(desc)[start..start + len]
    }

    /// A frame from the free stack, if any.
    pub fn take_free(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Gives a frame we hold back to the free stack.
    pub fn release(&mut self, desc: Desc) {
        self.free.push(desc.chunk());
    }

    /// Copies `from` into free chunk `to` at TX_HEADROOM via `write`, which
    /// gets the source bytes and the destination space and returns the new
    /// length (or None to give the chunk back).
    pub fn copy_into_free(
        &mut self,
        from: Desc,
        write: impl FnOnce(&[u8], &mut [u8]) -> Option<usize>,
    ) -> Option<Desc> {
        let to = self.take_free()?;
        let (src_chunk, headroom) = (from.chunk() as usize, from.headroom());
        let dst_chunk = to as usize;
        let frame_size = FRAME_SIZE as usize;
        let area = self.area.bytes_mut();
        // Two distinct chunks: split the area between them.
        let (src, dst) = if src_chunk < dst_chunk {
            let (low, high) = area.split_at_mut(dst_chunk);
            (
                &low[src_chunk..src_chunk + frame_size],
                &mut high[..frame_size],
            )
        } else {
            let (low, high) = area.split_at_mut(src_chunk);
            (
                &high[..frame_size],
                &mut low[dst_chunk..dst_chunk + frame_size],
            )
        };
        let len = (from.len as usize).min(frame_size - headroom);
        let src = &src[headroom..headroom + len];
        let out = &mut dst[TX_HEADROOM as usize..];
        match write(src, out) {
            Some(written) => Some(Desc {
                addr: to + u64::from(TX_HEADROOM),
                len: written as u32,
            }),
            None => {
                self.free.push(to);
                None
            }
        }
    }

    /// Queues `descs` on `port`'s TX ring and kicks the kernel once. Frames
    /// the ring had no room for go back to the free stack; returns how many
    /// were queued.
    pub fn transmit(&mut self, port: usize, descs: &[Desc]) -> usize {
        if descs.is_empty() {
            return 0;
        }
        let tx = &mut self.ports[port].tx;
        let mut sent = 0;
        while sent < descs.len() {
            let mut writer = tx.transmit((descs.len() - sent) as u32);
            if writer.capacity() == 0 {
                break;
            }
            let inserted = writer.insert(descs[sent..].iter().map(|desc| XdpDesc {
                addr: desc.addr,
                len: desc.len,
                options: 0,
            }));
            writer.commit();
            sent += inserted as usize;
            if inserted == 0 {
                break;
            }
        }
        if sent > 0 {
            Self::drain(tx, sent);
        }
        for desc in &descs[sent..] {
            self.free.push(desc.chunk());
        }
        sent
    }

    /// Copy mode transmits only from sendto(), at most `COPY_MODE_TX_BUDGET`
    /// frames per call: kick until the ring is drained, a bounded number of
    /// times (one syscall per 32 frames, never per frame).
    fn drain(tx: &RingTx, queued: usize) {
        let most = queued.div_ceil(COPY_MODE_TX_BUDGET) + 1;
        for _ in 0..most {
            if tx.pending() == 0 || !tx.needs_wakeup() {
                break;
            }
            tx.wake();
        }
    }

    /// Kicks `port`'s TX so frames still queued go out.
    pub fn kick(&mut self, port: usize) {
        let tx = &self.ports[port].tx;
        let pending = tx.pending() as usize;
        if pending > 0 {
            Self::drain(tx, pending);
        }
    }
}
