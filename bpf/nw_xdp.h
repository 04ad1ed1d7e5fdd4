/* nodewall XDP: the one header shared by nw_xdp.c and bench/floor_*.c.
 *
 * Mirrored by exactly one Python module, engine/dataplane/xdp/layout.py (a unit test parses
 * this file and compares every constant and struct size with the mirror).
 * Sizes marked "-D" are set by the loader with -D flags; the defaults here are
 * what the mirror's defaults are.
 */
#ifndef NW_XDP_H
#define NW_XDP_H

/* ---- build configuration (-D) ---- */
#ifndef NW_MAX_RULES
#define NW_MAX_RULES 32         /* rule rows per interface */
#endif
#ifndef NW_MAX_FS
#define NW_MAX_FS 16            /* failsafe entries per interface */
#endif
#ifndef NW_MAX_PORTS
#define NW_MAX_PORTS 8          /* destination port ranges per rule row */
#endif
#ifndef NW_MAX_SLOTS
#define NW_MAX_SLOTS 256        /* per-rule counter slots */
#endif
#ifndef NW_MAX_IFACES
#define NW_MAX_IFACES 64        /* interfaces with a rule table (per generation) */
#endif
#ifndef NW_V6_EXT_DEPTH
#define NW_V6_EXT_DEPTH 4       /* IPv6 extension headers skipped */
#endif

/* ---- fixed constants ---- */
#define NW_GENERATIONS 2        /* A/B: a full reload fills the inactive one, then flips */
#define NW_IFARR_SLOTS 128      /* ifindexes below this have their rule table in the
                                   array nw_ifarr (index ifindex * 2 + gen); larger ones
                                   in the hash nw_ifcfg */
#define NW_ACTION_ALLOW 1
#define NW_ACTION_DENY 2

/* per-action counter indexes (map nw_act) */
#define NW_ACT_NOMATCH 0        /* no rule matched: passed on to iptables raw */
#define NW_ACT_ALLOW 1
#define NW_ACT_DENY 2
#define NW_ACT_FAILSAFE 3
#define NW_ACT_NOTIP 4          /* not IPv4/IPv6, or truncated headers: passed */
#define NW_ACT_NOCFG 5          /* interface without a rule table: passed */
#define NW_ACT_VLAN 6           /* 802.1Q / 802.1ad tagged: passed untouched (iptables
                                   judges it on the VLAN sub-interface, not here) */
#define NW_ACT_MAX 7

/* ---- map value / key layouts ---- */
struct nw_lpm4 {
    __u32 prefixlen;
    __u8 addr[4];
};                                            /* 8 bytes */

struct nw_lpm6 {
    __u32 prefixlen;
    __u8 addr[16];
};                                            /* 20 bytes */

struct nw_host6 {                             /* key of the IPv6 host hash */
    __u8 addr[16];
};                                            /* 16 bytes */

struct nw_ifkey {
    __u32 ifindex;
    __u32 gen;
};                                            /* 8 bytes */

struct nw_port_range {
    __u16 lo;                                 /* host byte order, inclusive */
    __u16 hi;
};                                            /* 4 bytes */

struct nw_fs {                                /* failsafe: port (+ source CIDR) */
    __u8 proto;                               /* 6 tcp, 17 udp */
    __u8 family;                              /* 0 any, 4, 6 */
    __u16 port;                               /* host byte order */
    __u16 slot;                               /* counter slot (nw_cnt index) */
    __u8 sport;                               /* 0: inbound entry, match the DESTINATION
                                                 port; 1: return traffic of an outbound
                                                 entry, match the SOURCE port */
    __u8 _pad;
    __u64 addr[2];                            /* source network, raw address bytes */
    __u64 mask[2];                            /* all zero = any source */
};                                            /* 40 bytes */

struct nw_rule {
    __u64 src_bits;                           /* source in ANY of these sets; 0 = any */
    __u16 slot;                               /* counter slot (nw_cnt index) */
    __u8 action;                              /* NW_ACTION_* */
    __u8 proto;                               /* 0 = any */
    __u8 family;                              /* 0 = both, 4, 6 */
    __u8 n_ports;                             /* 0 = any destination port */
    __u16 _pad;
    struct nw_port_range ports[NW_MAX_PORTS];
};                                            /* 16 + 4 * NW_MAX_PORTS bytes */

/* Failsafe pre-filter: a 256-bit Bloom filter over (proto, direction, port) of the
 * entries, so that the common packet (no failsafe port) skips the entry loop. */
#define NW_FS_BLOOM_WORDS 4
#define NW_FS_HASH_MUL 2654435761
#define NW_FS_HASH_PROTO 40503
#define NW_FS_HASH_DIR 97
/* bit = ((port * MUL + proto * PROTO + sport_flag * DIR) mod 2^32) >> 24 */

struct nw_iface {
    __u16 n_fs;
    __u16 n_rules;
    __u32 present;                            /* 1: a rule table (array slots of
                                                 interfaces without one are 0) */
    __u64 fs_bloom[NW_FS_BLOOM_WORDS];
    struct nw_fs fs[NW_MAX_FS];
    struct nw_rule rules[NW_MAX_RULES];
};                                            /* 40 + 40 * FS + rule * RULES bytes */

struct nw_counter {
    __u64 packets;
    __u64 bytes;
};                                            /* 16 bytes, per CPU */

#define NW_RULE_SIZE (16 + 4 * NW_MAX_PORTS)
#define NW_IFACE_SIZE (40 + 40 * NW_MAX_FS + NW_RULE_SIZE * NW_MAX_RULES)

#endif /* NW_XDP_H */
