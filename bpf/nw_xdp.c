/* nodewall XDP ingress program (bcc dialect; sizes come from -D flags, see nw_xdp.h).
 *
 * Per packet: find the interface's rule table for the active generation (array
 * nw_ifarr for ifindexes < NW_IFARR_SLOTS, hash nw_ifcfg above); parse
 * Ethernet, IPv4 / IPv6 (+extension headers), TCP/UDP/SCTP/UDP-Lite ports;
 * failsafe first (always XDP_PASS): inbound entries on the destination port, the
 * return traffic of outbound entries on the SOURCE port, as the raw chain does; then
 * the rule rows in order, first match wins: allow -> XDP_PASS (iptables raw still
 * sees it), deny -> XDP_DROP.  The source's set-membership bits (done only when a
 * row needs them) come, like ipset's hash:net, from an exact-match hash of the host
 * entries (/32, /128; each value includes the bits of every covering prefix) and,
 * on a miss, one LPM lookup in the trie of the shorter prefixes.  Both are inner
 * maps of an array-of-maps slot per generation; an empty slot = no such entries.
 *
 * VLAN-tagged frames are passed untouched (counted as NW_ACT_VLAN): iptables sees
 * them on the VLAN sub-interface (eth0.100), whose host endpoint and rules are not
 * this interface's, so judging them with this interface's rules would be wrong.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#include "nw_xdp.h"

BPF_ARRAY(nw_active, __u32, 1);                       /* active generation (0/1) */
BPF_ARRAY(nw_ifarr, struct nw_iface, NW_IFARR_SLOTS * NW_GENERATIONS);
BPF_HASH(nw_ifcfg, struct nw_ifkey, struct nw_iface, NW_MAX_IFACES * NW_GENERATIONS);
BPF_LPM_TRIE(nw_tmpl4, struct nw_lpm4, __u64, 1);     /* inner-map templates only */
BPF_LPM_TRIE(nw_tmpl6, struct nw_lpm6, __u64, 1);
BPF_F_TABLE("hash", __u32, __u64, nw_htmpl4, 1, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct nw_host6, __u64, nw_htmpl6, 1, BPF_F_NO_PREALLOC);
BPF_ARRAY_OF_MAPS(nw_src4, "nw_tmpl4", NW_GENERATIONS);
BPF_ARRAY_OF_MAPS(nw_src6, "nw_tmpl6", NW_GENERATIONS);
BPF_ARRAY_OF_MAPS(nw_host4, "nw_htmpl4", NW_GENERATIONS);
BPF_ARRAY_OF_MAPS(nw_host6, "nw_htmpl6", NW_GENERATIONS);
BPF_PERCPU_ARRAY(nw_cnt, struct nw_counter, NW_MAX_SLOTS);
BPF_PERCPU_ARRAY(nw_act, struct nw_counter, NW_ACT_MAX);

union nw_addr {
    __u64 q[2];
    __u32 w[4];
    __u8 b[16];
};

static __always_inline int nw_count(__u32 act, __u64 len, int verdict)
{
    struct nw_counter *c = nw_act.lookup(&act);
    if (c) {
        c->packets += 1;
        c->bytes += len;
    }
    return verdict;
}

static __always_inline int nw_fs_maybe(struct nw_iface *ifc, __u8 l4, __u32 dir, __u16 port)
{
    __u32 h = (__u32)(port * NW_FS_HASH_MUL + l4 * NW_FS_HASH_PROTO + dir * NW_FS_HASH_DIR) >> 24;
    return (ifc->fs_bloom[(h >> 6) & (NW_FS_BLOOM_WORDS - 1)] >> (h & 63)) & 1;
}

static __always_inline __u64 nw_bits(__u32 gen, __u8 family, union nw_addr *src)
{
    __u64 *v = 0;
    if (family == 4) {
        void *hosts = nw_host4.lookup(&gen);
        if (hosts) {
            v = bpf_map_lookup_elem(hosts, &src->w[0]);
            if (v)
                return *v;
        }
        void *trie = nw_src4.lookup(&gen);
        if (!trie)
            return 0;
        struct nw_lpm4 k = {.prefixlen = 32};
        __builtin_memcpy(k.addr, src->b, 4);
        v = bpf_map_lookup_elem(trie, &k);
    } else {
        void *hosts = nw_host6.lookup(&gen);
        if (hosts) {
            v = bpf_map_lookup_elem(hosts, src->b);
            if (v)
                return *v;
        }
        void *trie = nw_src6.lookup(&gen);
        if (!trie)
            return 0;
        struct nw_lpm6 k = {.prefixlen = 128};
        __builtin_memcpy(k.addr, src->b, 16);
        v = bpf_map_lookup_elem(trie, &k);
    }
    return v ? *v : 0;
}

int nw_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u64 len = end - data;
    __u32 zero = 0;
    __u32 *genp = nw_active.lookup(&zero);
    __u32 gen = genp ? (*genp & 1) : 0;
    __u32 ifx = ctx->ingress_ifindex;
    struct nw_iface *ifc;
    if (ifx < NW_IFARR_SLOTS) {               /* the common case: an inlined array load */
        __u32 ai = ifx * NW_GENERATIONS + gen;
        ifc = nw_ifarr.lookup(&ai);
        if (ifc && !ifc->present)
            ifc = 0;
    } else {
        struct nw_ifkey ik = {.ifindex = ifx, .gen = gen};
        ifc = nw_ifcfg.lookup(&ik);
    }
    if (!ifc)
        return nw_count(NW_ACT_NOCFG, len, XDP_PASS);

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
    __be16 proto = eth->h_proto;
    void *cur = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
        return nw_count(NW_ACT_VLAN, len, XDP_PASS);

    union nw_addr src = {};
    __u8 family, l4;
    int l4_ok = 1;                            /* first fragment / unfragmented */
    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = cur;
        if ((void *)(ip + 1) > end)
            return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
        family = 4;
        l4 = ip->protocol;
        src.w[0] = ip->saddr;
        __u32 ihl = ip->ihl * 4;
        if (ihl < sizeof(*ip))
            return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
        if (ip->frag_off & bpf_htons(0x1fff))
            l4_ok = 0;
        cur = (void *)ip + ihl;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = cur;
        if ((void *)(ip6 + 1) > end)
            return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
        family = 6;
        l4 = ip6->nexthdr;
        __builtin_memcpy(src.b, &ip6->saddr, 16);
        cur = ip6 + 1;
#pragma unroll
        for (int i = 0; i < NW_V6_EXT_DEPTH; i++) {
            if (l4 != IPPROTO_HOPOPTS && l4 != IPPROTO_ROUTING && l4 != IPPROTO_DSTOPTS &&
                l4 != IPPROTO_FRAGMENT && l4 != IPPROTO_AH)
                break;
            __u8 *h = cur;
            if ((void *)(h + 8) > end)
                return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
            __u32 hlen;
            if (l4 == IPPROTO_FRAGMENT) {
                hlen = 8;
                if ((h[2] << 8 | (h[3] & 0xf8)) != 0)   /* fragment offset */
                    l4_ok = 0;
            } else if (l4 == IPPROTO_AH) {
                hlen = (h[1] + 2) * 4;
            } else {
                hlen = (h[1] + 1) * 8;
            }
            l4 = h[0];
            cur = (void *)h + hlen;
        }
    } else {
        return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
    }

    int has_port = 0;
    __u16 sport = 0, dport = 0;
    if (l4_ok && (l4 == IPPROTO_TCP || l4 == IPPROTO_UDP || l4 == IPPROTO_SCTP ||
                  l4 == IPPROTO_UDPLITE)) {
        __be16 *ports = cur;
        if ((void *)(ports + 2) > end)
            return nw_count(NW_ACT_NOTIP, len, XDP_PASS);
        sport = bpf_ntohs(ports[0]);
        dport = bpf_ntohs(ports[1]);
        has_port = 1;
    }

    /* failsafe: checked before anything else, never dropped */
    if (has_port && (nw_fs_maybe(ifc, l4, 0, dport) || nw_fs_maybe(ifc, l4, 1, sport))) {
        for (int i = 0; i < NW_MAX_FS; i++) {
            if (i >= ifc->n_fs)
                break;
            struct nw_fs *f = &ifc->fs[i];
            if (f->proto != l4 || f->port != (f->sport ? sport : dport))
                continue;
            if (f->family && f->family != family)
                continue;
            if ((src.q[0] & f->mask[0]) != f->addr[0] || (src.q[1] & f->mask[1]) != f->addr[1])
                continue;
            __u32 fslot = f->slot;
            struct nw_counter *fc = nw_cnt.lookup(&fslot);
            if (fc) {
                fc->packets += 1;
                fc->bytes += len;
            }
            return nw_count(NW_ACT_FAILSAFE, len, XDP_PASS);
        }
    }

    __u64 bits = 0;
    int looked = 0;
    for (int i = 0; i < NW_MAX_RULES; i++) {
        if (i >= ifc->n_rules)
            break;
        struct nw_rule *r = &ifc->rules[i];
        if (r->family && r->family != family)
            continue;
        if (r->proto && r->proto != l4)
            continue;
        if (r->n_ports) {
            if (!has_port)
                continue;
            int hit = 0;
            for (int j = 0; j < NW_MAX_PORTS; j++) {
                if (j >= r->n_ports)
                    break;
                if (dport >= r->ports[j].lo && dport <= r->ports[j].hi) {
                    hit = 1;
                    break;
                }
            }
            if (!hit)
                continue;
        }
        if (r->src_bits) {
            if (!looked) {
                bits = nw_bits(gen, family, &src);
                looked = 1;
            }
            if (!(bits & r->src_bits))
                continue;
        }
        __u32 slot = r->slot;
        struct nw_counter *c = nw_cnt.lookup(&slot);
        if (c) {
            c->packets += 1;
            c->bytes += len;
        }
        if (r->action == NW_ACTION_DENY)
            return nw_count(NW_ACT_DENY, len, XDP_DROP);
        return nw_count(NW_ACT_ALLOW, len, XDP_PASS);
    }
    return nw_count(NW_ACT_NOMATCH, len, XDP_PASS);
}
