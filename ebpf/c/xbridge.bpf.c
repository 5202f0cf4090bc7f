// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// xbridge port program: hands every frame of a bridge port to the AF_XDP
// socket that serves the receiving queue. It keeps per-CPU counters, and drops
// early only what can be judged without state (spec I1 runts, and 802.3x pause
// frames, spec I6), so those never cost a trip to userspace.
//
// The counter indices are mirrored in ebpf/src/lib.rs (XdpCounter): keep the
// two lists in the same order.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#define MAX_QUEUES 64

enum xbridge_counter {
	XB_RX_FRAMES = 0,    /* every frame the program saw */
	XB_REDIRECTED,       /* handed to an AF_XDP socket */
	XB_DROP_MALFORMED,   /* shorter than an Ethernet header (spec I1) */
	XB_DROP_PAUSE,       /* 01:80:c2:00:00:01, never forwarded (spec I6) */
	XB_DROP_NO_SOCKET,   /* no socket bound for the receiving queue */
	XB_COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XB_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &which);

	if (value)
		*value += 1;
}

static __always_inline int is_pause_address(const unsigned char *dst)
{
	return dst[0] == 0x01 && dst[1] == 0x80 && dst[2] == 0xc2 &&
	       dst[3] == 0x00 && dst[4] == 0x00 && dst[5] == 0x01;
}

SEC("xdp")
int xbridge_port(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct ethhdr *eth = data;
	long verdict;

	count(XB_RX_FRAMES);
	if ((void *)(eth + 1) > data_end) {
		count(XB_DROP_MALFORMED);
		return XDP_DROP;
	}
	if (is_pause_address(eth->h_dest)) {
		count(XB_DROP_PAUSE);
		return XDP_DROP;
	}

	verdict = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);
	count(verdict == XDP_REDIRECT ? XB_REDIRECTED : XB_DROP_NO_SOCKET);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
