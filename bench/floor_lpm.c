/* The floor for bench/xdp_*: parse Ethernet + IPv4/IPv6 and do the one LPM lookup
 * of the source in a trie reached the same way nw_xdp.c reaches it (array-of-maps
 * slot 0), nothing else.  nw_xdp.c's per-packet cost is measured against this. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "nw_xdp.h"

BPF_LPM_TRIE(nw_tmpl4, struct nw_lpm4, __u64, 1);
BPF_LPM_TRIE(nw_tmpl6, struct nw_lpm6, __u64, 1);
BPF_ARRAY_OF_MAPS(nw_src4, "nw_tmpl4", NW_GENERATIONS);
BPF_ARRAY_OF_MAPS(nw_src6, "nw_tmpl6", NW_GENERATIONS);

int nw_floor(struct xdp_md *ctx)
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
        void *trie = nw_src4.lookup(&zero);
        if (!trie)
            return XDP_PASS;
        struct nw_lpm4 k = {.prefixlen = 32};
        __builtin_memcpy(k.addr, &ip->saddr, 4);
        v = bpf_map_lookup_elem(trie, &k);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return XDP_PASS;
        void *trie = nw_src6.lookup(&zero);
        if (!trie)
            return XDP_PASS;
        struct nw_lpm6 k = {.prefixlen = 128};
        __builtin_memcpy(k.addr, &ip6->saddr, 16);
        v = bpf_map_lookup_elem(trie, &k);
    }
    return (v && *v) ? XDP_DROP : XDP_PASS;
}
