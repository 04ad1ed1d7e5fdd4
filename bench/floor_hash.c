/* The second floor for bench/xdp_pkt: parse Ethernet + IPv4/IPv6 and do one
 * exact-match HASH lookup of the source in a hash reached the way nw_xdp.c reaches
 * its host hash (array-of-maps slot 0), nothing else.  bench/xdp_pkt reports
 * nodewall against this floor too: nodewall's source lookup is a hash lookup first. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "nw_xdp.h"

BPF_F_TABLE("hash", __u32, __u64, nw_htmpl4, 1, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct nw_host6, __u64, nw_htmpl6, 1, BPF_F_NO_PREALLOC);
BPF_ARRAY_OF_MAPS(nw_host4, "nw_htmpl4", NW_GENERATIONS);
BPF_ARRAY_OF_MAPS(nw_host6, "nw_htmpl6", NW_GENERATIONS);

int nw_floor_hash(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    __u32 zero = 0;
    __u64 *v = 0;
    if ((void *)(eth + 1) > end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end)
            return XDP_PASS;
        void *hosts = nw_host4.lookup(&zero);
        if (!hosts)
            return XDP_PASS;
        __u32 k = ip->saddr;
        v = bpf_map_lookup_elem(hosts, &k);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return XDP_PASS;
        void *hosts = nw_host6.lookup(&zero);
        if (!hosts)
            return XDP_PASS;
        struct nw_host6 k;
        __builtin_memcpy(k.addr, &ip6->saddr, 16);
        v = bpf_map_lookup_elem(hosts, &k);
    }
    return (v && *v) ? XDP_DROP : XDP_PASS;
}
