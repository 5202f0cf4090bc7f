//! The benchmark's frames are valid Ethernet/IPv4/UDP: checked with an
//! independent parser (etherparse), since veth GRO drops broken IP headers.

use std::net::Ipv4Addr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use xbridge::wire::{internet_checksum, MacAddr, UdpFrameSpec, UDP_PAYLOAD_OFFSET};

fn spec(wire_size: usize) -> UdpFrameSpec {
    UdpFrameSpec {
        dst_mac: MacAddr([2, 0, 0, 0, 0xbe, 2]),
        src_mac: MacAddr([2, 0, 0, 0, 0xbe, 1]),
        src_ip: Ipv4Addr::new(192, 168, 50, 1),
        dst_ip: Ipv4Addr::new(192, 168, 50, 2),
        src_port: 40000,
        dst_port: 9,
        wire_size,
    }
}

#[test]
fn frames_of_every_bench_size_parse_with_valid_checksums() {
    for size in [64, 128, 512, 1024, 1518] {
        let frame = spec(size).build();
        assert_eq!(frame.len(), size - 4, "FCS not included");
        let packet = SlicedPacket::from_ethernet(&frame).expect("parses");
        let Some(NetSlice::Ipv4(ip)) = packet.net else {
            panic!("IPv4")
        };
        let header = ip.header().to_header();
        assert_eq!(
            header.calc_header_checksum(),
            header.header_checksum,
            "size {size}"
        );
        assert_eq!(usize::from(header.total_len), size - 4 - 14);
        let Some(TransportSlice::Udp(udp)) = packet.transport else {
            panic!("UDP")
        };
        assert_eq!((udp.source_port(), udp.destination_port()), (40000, 9));
        assert_eq!(usize::from(udp.length()), size - 4 - 14 - 20);
        assert_eq!(udp.checksum(), 0, "no UDP checksum");
        assert_eq!(udp.payload().len(), frame.len() - UDP_PAYLOAD_OFFSET);
    }
}

#[test]
fn the_checksum_matches_rfc1071_examples() {
    // RFC 1071 section 3 example: sum of these words is ddf2, checksum 220d.
    let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(internet_checksum(&words), !0xddf2u16);
    // A header with its checksum in place sums to zero.
    let frame = spec(64).build();
    assert_eq!(internet_checksum(&frame[14..34]), 0);
}
