// SPDX-License-Identifier: GPL-2.0
/* Benchmark baseline: the least any steering program must do, parse the packet and do
 * one hash lookup. failsteer's paths are reported as ratios to this. */
#include "lib/common.h"
#include "lib/parse.h"

/* Flow-keyed hash the baseline looks up; empty or filled by the benchmark. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fs_flow_key);
	__type(value, __u64);
} baseline_table SEC(".maps");

SEC("tc")
int fs_baseline(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct cursor c;
	struct pkt p = {};
	__u64 *v;

	if (parse_packet(skb, data, data_end, &p, &c) != 0)
		return TC_ACT_OK;
	v = bpf_map_lookup_elem(&baseline_table, &p.key);
	if (v)
		*v += 1;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
