//! Raw frames in and out through AF_PACKET, with 802.1Q tags restored from
//! `PACKET_AUXDATA` (the kernel moves the outer tag into metadata on receive).
//! Used by tests and `xbridge` diagnostics, never by the fast path.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A frame as captured: the bytes with the outer tag put back where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// The (TPID, TCI) the kernel had stripped into metadata, if any.
    pub stripped_tag: Option<(u16, u16)>,
}

/// An AF_PACKET socket bound to one interface of the namespace it was
/// created in.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

impl PacketSocket {
    /// Opens and binds a raw socket on `ifname` in the current namespace.
    pub fn open(ifname: &str) -> io::Result<PacketSocket> {
        let ifindex = super::if_index(ifname)?;
        // SAFETY: plain socket(2) call; ownership goes to OwnedFd below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let result = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        let address = sockaddr_ll(ifindex);
        // SAFETY: bind with a fully initialised sockaddr_ll and its size.
        let result = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one frame as is.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let address = sockaddr_ll(self.ifindex);
        // SAFETY: `frame` and `address` are valid for the lengths passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drops whatever is queued (frames that arrived before a test step).
    pub fn drain(&self) {
        while let Ok(Some(_)) = self.receive(Duration::ZERO) {}
    }

    /// The next incoming frame (not our own sends) within `timeout`.
    pub fn receive(&self, timeout: Duration) -> io::Result<Option<Captured>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = [super::poll_entry(self.fd.as_raw_fd())];
            if super::wait_readable(&mut poll, left)? == 0 {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            }
            if let Some(frame) = self.receive_now()? {
                return Ok(Some(frame));
            }
        }
    }

    fn receive_now(&self) -> io::Result<Option<Captured>> {
        let mut buffer = vec![0u8; 65536];
        let mut control = [0u64; 64];
        let mut from: libc::sockaddr_ll = zeroed_sockaddr_ll();
        let mut iov = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: buffer.len(),
        };
        // SAFETY: msghdr is plain C data; all-zero is valid and every pointer
        // field is set below.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        message.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every buffer `message` points to is alive and sized as stated.
        let len = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut message, libc::MSG_DONTWAIT) };
        if len < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(err);
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(None);
        }
        buffer.truncate(len as usize);
        let mut stripped_tag = None;
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
        // bounded by msg_controllen; tpacket_auxdata is read unaligned.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_PACKET
                    && (*header).cmsg_type == libc::PACKET_AUXDATA
                {
                    let aux: libc::tpacket_auxdata =
                        std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                    if aux.tp_status & TP_STATUS_VLAN_VALID != 0 || aux.tp_vlan_tci != 0 {
                        let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        stripped_tag = Some((tpid, aux.tp_vlan_tci));
                    }
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        if let (Some((tpid, tci)), true) = (stripped_tag, buffer.len() >= 12) {
            let [tpid_high, tpid_low] = tpid.to_be_bytes();
            let [tci_high, tci_low] = tci.to_be_bytes();
            buffer.splice(12..12, [tpid_high, tpid_low, tci_high, tci_low]);
        }
        Ok(Some(Captured {
            bytes: buffer,
            stripped_tag,
        }))
    }
}

fn zeroed_sockaddr_ll() -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain C data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn sockaddr_ll(ifindex: u32) -> libc::sockaddr_ll {
    let mut address = zeroed_sockaddr_ll();
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = ETH_P_ALL.to_be();
    address.sll_ifindex = ifindex as i32;
    address
}
