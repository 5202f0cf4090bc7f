// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// The benchmark's two XDP programs.
//
// xbridge_gen runs under BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: for
// each frame it writes a sequence number, its stream (the CPU) and a send
// timestamp into the UDP payload, picks the flow's UDP source port, and
// redirects the frame out of the generator's veth. The IPv4 header never
// changes after userspace built it (valid checksum: veth GRO drops broken
// headers); the UDP checksum is 0 (none), as IPv4 allows.
//
// xbridge_sink sits on the sink veth: it counts frames per CPU, checks each
// stream's sequence numbers (loss, reordering, duplicates) and records the
// one-way latency into a log-linear histogram, then drops the frame.
//
// Layout constants are mirrored in bridge/src/bench.rs (BenchPayload).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BENCH_MAGIC 0x78627231 /* "xbr1" */
/* Kernel pktgen's header (struct pktgen_hdr, network order): magic, seq,
 * tv_sec, tv_usec. Its timestamps use another clock: no latency for them. */
#define PKTGEN_MAGIC 0xbe9be955
#define PKTGEN_STREAM (MAX_STREAMS - 1)
#define MAX_STREAMS 64
#define HIST_BUCKETS 512
#define WINDOW_BITS 64

/* Offsets in an untagged frame: Ethernet 14, IPv4 20, UDP 8. */
#define ETH_LEN 14
#define VLAN_LEN 4
#define IP_LEN 20
#define UDP_LEN 8
#define UDP_SPORT_OFF (ETH_LEN + IP_LEN)
#define PAYLOAD_OFF (ETH_LEN + IP_LEN + UDP_LEN)

/* 18 bytes: all a 64-byte frame has after Ethernet, IPv4 and UDP headers
 * (60 bytes without FCS, 42 of headers). Sequence numbers restart with each
 * freshly loaded generator, so 32 bits last any trial. */
struct bench_payload {
	__u32 magic;
	__u32 seq;
	__u64 sent_ns;
	__u16 stream;
} __attribute__((packed));

struct gen_config {
	__u32 ifindex;      /* redirect target */
	__u32 flows;        /* UDP source ports cycled through */
	__u16 base_port;
	__u16 pad;
	__u32 pad2;
	__u64 interval_ns;  /* 0: as fast as possible; else one frame per interval */
};

/* Per CPU: frames really sent, and when the next one is due. */
struct gen_state {
	__u64 sent;
	__u64 next_ns;
};

/* A stalled generator (between BPF_PROG_RUN calls) catches up on at most
 * this much time at once: a bounded burst, not a flood. */
#define MAX_LAG_NS 1000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_state SEC(".maps");

SEC("xdp")
int xbridge_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bench_payload *payload = data + PAYLOAD_OFF;
	__u16 *sport = data + UDP_SPORT_OFF;
	struct gen_config *config;
	struct gen_state *state;
	__u32 zero = 0;
	__u64 now;
	__u16 port;

	if ((void *)(payload + 1) > data_end)
		return XDP_ABORTED;
	config = bpf_map_lookup_elem(&gen_config, &zero);
	state = bpf_map_lookup_elem(&gen_state, &zero);
	if (!config || !state)
		return XDP_ABORTED;
	now = bpf_ktime_get_ns();
	if (config->interval_ns) {
		/* Pacing: a frame only when one is due; the rest are dropped
		 * here and never counted as sent. */
		if (state->next_ns == 0)
			state->next_ns = now;
		if (now < state->next_ns)
			return XDP_DROP;
		state->next_ns += config->interval_ns;
		if (state->next_ns + MAX_LAG_NS < now)
			state->next_ns = now - MAX_LAG_NS;
	}
	state->sent += 1;
	payload->magic = BENCH_MAGIC;
	payload->seq = (__u32)state->sent;
	payload->sent_ns = now;
	payload->stream = bpf_get_smp_processor_id();
	port = config->base_port + (__u16)(state->sent % (config->flows ? config->flows : 1));
	*sport = (port >> 8) | (port << 8);
	return bpf_redirect(config->ifindex, 0);
}

/* Per-stream sequence state, shared by the sink's CPUs. */
struct stream_state {
	struct bpf_spin_lock lock;
	__u64 highest;   /* highest sequence number seen */
	__u64 window;    /* bit i: highest - i was seen */
	__u64 received;  /* distinct frames */
	__u64 reordered; /* arrived after a higher one */
	__u64 duplicates;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_STREAMS);
	__type(key, __u32);
	__type(value, struct stream_state);
} sink_streams SEC(".maps");

enum sink_counter {
	SINK_FRAMES = 0,
	SINK_BYTES,
	SINK_FOREIGN, /* not a benchmark frame */
	SINK_COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sink_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIST_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} sink_latency SEC(".maps");

static __always_inline void add(void *map, __u32 index, __u64 amount)
{
	__u64 *value = bpf_map_lookup_elem(map, &index);

	if (value)
		*value += amount;
}

/* Log-linear bucket: values below 32 ns exactly; above, 16 sub-buckets per
 * power of two. Mirrored by bucket_bounds() in bench/src/histogram.rs. */
static __always_inline __u32 latency_bucket(__u64 ns)
{
	__u32 msb = 0;
	__u64 v = ns;

	if (ns < 32)
		return ns;
	if (v >> 32) { msb += 32; v >>= 32; }
	if (v >> 16) { msb += 16; v >>= 16; }
	if (v >> 8) { msb += 8; v >>= 8; }
	if (v >> 4) { msb += 4; v >>= 4; }
	if (v >> 2) { msb += 2; v >>= 2; }
	if (v >> 1) { msb += 1; }
	/* msb >= 5 here */
	__u32 bucket = 32 + (msb - 5) * 16 + (__u32)((ns >> (msb - 4)) & 15);
	return bucket < HIST_BUCKETS ? bucket : HIST_BUCKETS - 1;
}

SEC("xdp")
int xbridge_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 now = bpf_ktime_get_ns();
	struct bench_payload *payload;
	struct stream_state *state;
	struct ethhdr *eth = data;
	__u32 offset = PAYLOAD_OFF;
	__u16 proto;
	__u64 seq;
	__u32 stream;

	add(&sink_counters, SINK_FRAMES, 1);
	add(&sink_counters, SINK_BYTES, data_end - data);
	if ((void *)(eth + 1) > data_end)
		goto foreign;
	proto = eth->h_proto;
	/* up to two 802.1Q tags (the VLAN case sinks behind a trunk) */
	if (proto == bpf_htons(ETH_P_8021Q)) {
		offset += VLAN_LEN;
		if (data + ETH_LEN + VLAN_LEN > data_end)
			goto foreign;
		proto = *(__u16 *)(data + ETH_LEN + 2);
		if (proto == bpf_htons(ETH_P_8021Q)) {
			offset += VLAN_LEN;
			if (data + ETH_LEN + 2 * VLAN_LEN > data_end)
				goto foreign;
			proto = *(__u16 *)(data + ETH_LEN + VLAN_LEN + 2);
		}
	}
	if (proto != bpf_htons(ETH_P_IP))
		goto foreign;
	payload = data + offset;
	if ((void *)(payload + 1) > data_end)
		goto foreign;
	if (payload->magic == BENCH_MAGIC) {
		seq = payload->seq;
		stream = payload->stream;
		if (stream >= PKTGEN_STREAM)
			goto foreign;
		if (now > payload->sent_ns)
			add(&sink_latency, latency_bucket(now - payload->sent_ns), 1);
	} else if (payload->magic == bpf_htonl(PKTGEN_MAGIC)) {
		seq = bpf_ntohl(payload->seq);
		stream = PKTGEN_STREAM;
	} else {
		goto foreign;
	}

	state = bpf_map_lookup_elem(&sink_streams, &stream);
	if (!state)
		return XDP_DROP;
	bpf_spin_lock(&state->lock);
	if (seq > state->highest) {
		__u64 shift = seq - state->highest;

		state->window = shift >= WINDOW_BITS ? 1 : (state->window << shift) | 1;
		state->highest = seq;
		state->received += 1;
	} else {
		__u64 age = state->highest - seq;

		if (age >= WINDOW_BITS) {
			state->reordered += 1;
			state->received += 1;
		} else if (state->window & (1ULL << age)) {
			state->duplicates += 1;
		} else {
			state->window |= 1ULL << age;
			state->reordered += 1;
			state->received += 1;
		}
	}
	bpf_spin_unlock(&state->lock);
	return XDP_DROP;

foreign:
	add(&sink_counters, SINK_FOREIGN, 1);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
