//! Zero-copy views over Ethernet/802.1Q frames: every byte offset the bridge
//! uses lives here, behind checked constructors.

use std::fmt;

/// Length of an Ethernet header without tags: destination, source, EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// Offset of the first EtherType/TPID field, right after the two addresses.
pub const ETHERTYPE_OFFSET: usize = 12;
/// The TPID of a customer VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// The TPID of a service VLAN tag; xbridge treats it as payload (spec I2).
pub const TPID_8021AD: u16 = 0x88a8;
/// The most tags an egress edit pushes (spec E5: sub-interface outside a VLAN tag).
pub const MAX_PUSHED_TAGS: usize = 2;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// The 48 bits as an integer, first byte most significant.
    pub fn to_u64(self) -> u64 {
        self.0
            .iter()
            .fold(0, |acc, byte| (acc << 8) | u64::from(*byte))
    }

    pub fn from_u64(value: u64) -> MacAddr {
        let bytes = value.to_be_bytes();
        MacAddr([bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]])
    }

    /// The IEEE 802.1D reserved group address 01:80:C2:00:00:0X, as X.
    pub fn reserved_group_index(self) -> Option<u8> {
        match self.0 {
            [0x01, 0x80, 0xc2, 0x00, 0x00, last] if last <= 0x0f => Some(last),
            _ => None,
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address that is not six colon-separated hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address (expected six hex bytes like 02:00:00:00:00:01)")]
pub struct BadMac(pub String);

impl std::str::FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(|| BadMac(text.to_string()))?;
            if part.len() != 2 {
                return Err(BadMac(text.to_string()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| BadMac(text.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(BadMac(text.to_string()));
        }
        Ok(MacAddr(bytes))
    }
}

/// The 16-bit Tag Control Information of an 802.1Q tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tci(pub u16);

impl Tci {
    pub fn new(pcp: u8, dei: bool, vid: u16) -> Tci {
        Tci((u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff))
    }

    pub fn vid(self) -> u16 {
        self.0 & 0x0fff
    }

    pub fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }

    pub fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// The same priority bits (PCP, DEI) with another VID.
    pub fn with_vid(self, vid: u16) -> Tci {
        Tci((self.0 & 0xf000) | (vid & 0x0fff))
    }
}

impl fmt::Debug for Tci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tci(vid {} pcp {} dei {})",
            self.vid(),
            self.pcp(),
            u8::from(self.dei())
        )
    }
}

/// Why bytes are not an Ethernet frame the bridge can read (spec I1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes is shorter than an Ethernet header")]
    TooShort { len: usize },
    #[error("802.1Q frame of {len} bytes is shorter than a tagged header")]
    TruncatedTag { len: usize },
}

/// A read-only view of an Ethernet frame, possibly 802.1Q tagged.
#[derive(Clone, Copy)]
pub struct EthernetFrame<'a> {
    bytes: &'a [u8],
}

impl fmt::Debug for EthernetFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EthernetFrame")
            .field("dst", &self.dst())
            .field("src", &self.src())
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl<'a> EthernetFrame<'a> {
    /// Checks the lengths spec I1 asks for: 14 bytes, 18 if the outermost
    /// EtherType is 802.1Q.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < ETH_HEADER_LEN {
            return Err(WireError::TooShort { len: bytes.len() });
        }
        let frame = EthernetFrame { bytes };
        if frame.ethertype_at(ETHERTYPE_OFFSET) == TPID_8021Q
            && bytes.len() < ETH_HEADER_LEN + VLAN_TAG_LEN
        {
            return Err(WireError::TruncatedTag { len: bytes.len() });
        }
        Ok(frame)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn dst(&self) -> MacAddr {
        MacAddr(self.bytes[0..6].try_into().expect("checked length"))
    }

    pub fn src(&self) -> MacAddr {
        MacAddr(self.bytes[6..12].try_into().expect("checked length"))
    }

    fn ethertype_at(&self, offset: usize) -> u16 {
        u16::from_be_bytes([self.bytes[offset], self.bytes[offset + 1]])
    }

    /// The outermost 802.1Q tag, if the frame has one (0x8100 only).
    pub fn outer_tag(&self) -> Option<Tci> {
        self.tag_at(0)
    }

    /// The `depth`-th stacked 802.1Q tag (0 = outermost), if the frame is
    /// long enough to hold it and every tag before it is 802.1Q too.
    pub fn tag_at(&self, depth: usize) -> Option<Tci> {
        let mut offset = ETHERTYPE_OFFSET;
        for level in 0..=depth {
            if offset + VLAN_TAG_LEN > self.bytes.len() || self.ethertype_at(offset) != TPID_8021Q {
                return None;
            }
            if level == depth {
                return Some(Tci(self.ethertype_at(offset + 2)));
            }
            offset += VLAN_TAG_LEN;
        }
        None
    }

    /// The EtherType after `tags` 802.1Q tags (the caller knows they exist).
    pub fn ethertype_after(&self, tags: usize) -> Option<u16> {
        let offset = ETHERTYPE_OFFSET + tags * VLAN_TAG_LEN;
        (offset + 2 <= self.bytes.len()).then(|| self.ethertype_at(offset))
    }
}

/// How an egress port wants the bytes changed (spec X1: only outer 802.1Q tags).
///
/// `strip` tags are removed right after the source address, then `push` tags
/// are inserted there, the first of `push` outermost.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TagEdit {
    pub strip: u8,
    pub push: [Option<Tci>; MAX_PUSHED_TAGS],
}

impl TagEdit {
    pub const NONE: TagEdit = TagEdit {
        strip: 0,
        push: [None, None],
    };

    pub fn pushed(&self) -> usize {
        self.push.iter().flatten().count()
    }

    /// Bytes the frame grows by (negative: shrinks).
    pub fn growth(&self) -> isize {
        (self.pushed() as isize - isize::from(self.strip)) * VLAN_TAG_LEN as isize
    }

    pub fn is_identity(&self) -> bool {
        self.strip == 0 && self.pushed() == 0
    }
}

/// Why an in-place edit could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("frame of {len} bytes does not hold the {strip} tags to strip")]
    NothingToStrip { len: usize, strip: u8 },
    #[error("{needed} bytes of headroom needed, {available} available")]
    NoHeadroom { needed: usize, available: usize },
    #[error("edited frame of {len} bytes does not fit a buffer of {capacity}")]
    NoRoom { len: usize, capacity: usize },
}

/// Applies `edit` in place to a frame that sits at `buffer[start..start+len]`
/// with the bytes before `start` free as headroom. Only the 12 address bytes
/// move; the payload stays where it is. Returns the new `(start, len)`.
pub fn apply_in_place(
    buffer: &mut [u8],
    start: usize,
    len: usize,
    edit: &TagEdit,
) -> Result<(usize, usize), EditError> {
    let strip_bytes = usize::from(edit.strip) * VLAN_TAG_LEN;
    if len < ETHERTYPE_OFFSET + strip_bytes + 2 || start + len > buffer.len() {
        return Err(EditError::NothingToStrip {
            len,
            strip: edit.strip,
        });
    }
    let push_bytes = edit.pushed() * VLAN_TAG_LEN;
    // The address bytes end up right before the pushed tags, which end where
    // the stripped tags ended.
    let tags_end = start + ETHERTYPE_OFFSET + strip_bytes;
    let new_start = (tags_end - push_bytes)
        .checked_sub(ETHERTYPE_OFFSET)
        .ok_or_else(|| EditError::NoHeadroom {
            needed: push_bytes.saturating_sub(strip_bytes),
            available: start,
        })?;
    buffer.copy_within(start..start + ETHERTYPE_OFFSET, new_start);
    let mut offset = new_start + ETHERTYPE_OFFSET;
    for tci in edit.push.iter().flatten() {
        buffer[offset..offset + 2].copy_from_slice(&TPID_8021Q.to_be_bytes());
        buffer[offset + 2..offset + 4].copy_from_slice(&tci.0.to_be_bytes());
        offset += VLAN_TAG_LEN;
    }
    Ok((new_start, len + push_bytes - strip_bytes))
}

/// Writes `frame` edited by `edit` into `out`, for copies made while
/// flooding. Returns the written length.
pub fn copy_edited(frame: &[u8], edit: &TagEdit, out: &mut [u8]) -> Result<usize, EditError> {
    let strip_bytes = usize::from(edit.strip) * VLAN_TAG_LEN;
    if frame.len() < ETHERTYPE_OFFSET + strip_bytes + 2 {
        return Err(EditError::NothingToStrip {
            len: frame.len(),
            strip: edit.strip,
        });
    }
    let rest = &frame[ETHERTYPE_OFFSET + strip_bytes..];
    let len = ETHERTYPE_OFFSET + edit.pushed() * VLAN_TAG_LEN + rest.len();
    if len > out.len() {
        return Err(EditError::NoRoom {
            len,
            capacity: out.len(),
        });
    }
    out[..ETHERTYPE_OFFSET].copy_from_slice(&frame[..ETHERTYPE_OFFSET]);
    let mut offset = ETHERTYPE_OFFSET;
    for tci in edit.push.iter().flatten() {
        out[offset..offset + 2].copy_from_slice(&TPID_8021Q.to_be_bytes());
        out[offset + 2..offset + 4].copy_from_slice(&tci.0.to_be_bytes());
        offset += VLAN_TAG_LEN;
    }
    out[offset..len].copy_from_slice(rest);
    Ok(len)
}

/// Bytes as lower-case hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (pairs of digits, no separators) back to bytes.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A frame builder for tests, tools and the generator: destination, source,
/// tags (outermost first, any TPID), EtherType and payload.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    dst: MacAddr,
    src: MacAddr,
    tags: Vec<(u16, Tci)>,
    ethertype: u16,
    payload: Vec<u8>,
}

impl FrameBuilder {
    pub fn new(dst: MacAddr, src: MacAddr) -> Self {
        FrameBuilder {
            dst,
            src,
            tags: Vec::new(),
            ethertype: 0x88b5, // IEEE local experimental
            payload: vec![0x5a; 46],
        }
    }

    pub fn tag(mut self, tci: Tci) -> Self {
        self.tags.push((TPID_8021Q, tci));
        self
    }

    pub fn tag_with_tpid(mut self, tpid: u16, tci: Tci) -> Self {
        self.tags.push((tpid, tci));
        self
    }

    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.ethertype = ethertype;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ETH_HEADER_LEN + 8 + self.payload.len());
        bytes.extend_from_slice(&self.dst.0);
        bytes.extend_from_slice(&self.src.0);
        for (tpid, tci) in &self.tags {
            bytes.extend_from_slice(&tpid.to_be_bytes());
            bytes.extend_from_slice(&tci.0.to_be_bytes());
        }
        bytes.extend_from_slice(&self.ethertype.to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    // spec: I1
    #[test]
    fn i1_runts_and_truncated_tags_are_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&[0; 13]).unwrap_err(),
            WireError::TooShort { len: 13 }
        );
        let mut tagged = vec![0u8; 17];
        tagged[12] = 0x81;
        assert_eq!(
            EthernetFrame::new_checked(&tagged).unwrap_err(),
            WireError::TruncatedTag { len: 17 }
        );
        tagged.push(0);
        assert!(EthernetFrame::new_checked(&tagged).is_ok());
        assert!(EthernetFrame::new_checked(&[0; 14]).is_ok());
    }

    #[test]
    fn tags_are_read_outermost_first() {
        let bytes = FrameBuilder::new(B, A)
            .tag(Tci::new(5, true, 10))
            .tag(Tci::new(0, false, 20))
            .build();
        let frame = EthernetFrame::new_checked(&bytes).unwrap();
        assert_eq!(frame.dst(), B);
        assert_eq!(frame.src(), A);
        let outer = frame.outer_tag().unwrap();
        assert_eq!((outer.vid(), outer.pcp(), outer.dei()), (10, 5, true));
        assert_eq!(frame.tag_at(1).unwrap().vid(), 20);
        assert_eq!(frame.tag_at(2), None);
        assert_eq!(frame.ethertype_after(2), Some(0x88b5));
    }

    #[test]
    fn an_8021ad_tag_is_not_an_8021q_tag() {
        let bytes = FrameBuilder::new(B, A)
            .tag_with_tpid(TPID_8021AD, Tci::new(0, false, 10))
            .build();
        assert_eq!(
            EthernetFrame::new_checked(&bytes).unwrap().outer_tag(),
            None
        );
    }

    fn edit(strip: u8, push: &[u16]) -> TagEdit {
        let mut edit = TagEdit {
            strip,
            ..TagEdit::NONE
        };
        for (slot, vid) in edit.push.iter_mut().zip(push) {
            *slot = Some(Tci::new(0, false, *vid));
        }
        edit
    }

    // spec: X1
    #[test]
    fn x1_in_place_edits_touch_only_outer_tags() {
        let original = FrameBuilder::new(B, A).tag(Tci::new(3, false, 10)).build();
        let expected_cases = [
            (edit(0, &[]), original.clone()),
            (edit(1, &[]), FrameBuilder::new(B, A).build()),
            (
                edit(1, &[20]),
                FrameBuilder::new(B, A).tag(Tci::new(0, false, 20)).build(),
            ),
            (
                edit(0, &[7]),
                FrameBuilder::new(B, A)
                    .tag(Tci::new(0, false, 7))
                    .tag(Tci::new(3, false, 10))
                    .build(),
            ),
            (
                edit(1, &[7, 30]),
                FrameBuilder::new(B, A)
                    .tag(Tci::new(0, false, 7))
                    .tag(Tci::new(0, false, 30))
                    .build(),
            ),
        ];
        for (edit, expected) in expected_cases {
            let headroom = 16;
            let mut buffer = vec![0u8; headroom + original.len() + 16];
            buffer[headroom..headroom + original.len()].copy_from_slice(&original);
            let (start, len) =
                apply_in_place(&mut buffer, headroom, original.len(), &edit).unwrap();
            assert_eq!(&buffer[start..start + len], &expected[..], "{edit:?}");
            let mut out = vec![0u8; 128];
            let copied = copy_edited(&original, &edit, &mut out).unwrap();
            assert_eq!(&out[..copied], &expected[..], "copy {edit:?}");
        }
    }

    #[test]
    fn pushing_without_headroom_fails_cleanly() {
        let original = FrameBuilder::new(B, A).build();
        let mut buffer = original.clone();
        assert_eq!(
            apply_in_place(&mut buffer, 0, original.len(), &edit(0, &[10])),
            Err(EditError::NoHeadroom {
                needed: 4,
                available: 0
            })
        );
        assert_eq!(buffer, original);
    }

    #[test]
    fn mac_parses_and_prints() {
        let mac: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(mac, A);
        assert_eq!(mac.to_string(), "02:00:00:00:00:0a");
        assert_eq!(MacAddr::from_u64(mac.to_u64()), mac);
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:0g".parse::<MacAddr>().is_err());
        assert_eq!(
            "01:80:c2:00:00:0e"
                .parse::<MacAddr>()
                .unwrap()
                .reserved_group_index(),
            Some(0x0e)
        );
        assert_eq!(
            "01:80:c2:00:00:10"
                .parse::<MacAddr>()
                .unwrap()
                .reserved_group_index(),
            None
        );
    }
}

/// Bytes of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Bytes of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Where the UDP payload starts in an untagged IPv4/UDP frame.
pub const UDP_PAYLOAD_OFFSET: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Bytes an Ethernet frame has on the wire beyond what software sees (FCS).
pub const FCS_LEN: usize = 4;

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = match pair {
            [high, low] => u16::from_be_bytes([*high, *low]),
            [high] => u16::from_be_bytes([*high, 0]),
            _ => unreachable!("chunks(2)"),
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parameters of a benchmark frame: Ethernet/IPv4/UDP.
#[derive(Debug, Clone, Copy)]
pub struct UdpFrameSpec {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub src_ip: std::net::Ipv4Addr,
    pub dst_ip: std::net::Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// Size on the wire including the FCS (64..=1518 for Ethernet).
    pub wire_size: usize,
}

impl UdpFrameSpec {
    /// The frame without FCS: a valid IPv4 header (checksum filled in), UDP
    /// checksum 0 (none, legal over IPv4), zeroed payload.
    pub fn build(&self) -> Vec<u8> {
        let len = self
            .wire_size
            .saturating_sub(FCS_LEN)
            .max(UDP_PAYLOAD_OFFSET);
        let mut frame = vec![0u8; len];
        frame[0..6].copy_from_slice(&self.dst_mac.0);
        frame[6..12].copy_from_slice(&self.src_mac.0);
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (len - ETH_HEADER_LEN) as u16;
        let ip = &mut frame[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN];
        ip[0] = 0x45; // version 4, 5 words
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64; // TTL
        ip[9] = 17; // UDP
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let checksum = internet_checksum(ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        let udp_start = ETH_HEADER_LEN + IPV4_HEADER_LEN;
        let udp = &mut frame[udp_start..udp_start + UDP_HEADER_LEN];
        udp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&(ip_len - IPV4_HEADER_LEN as u16).to_be_bytes());
        frame
    }
}
