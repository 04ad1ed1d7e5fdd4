"""Helpers of the XDP backend kernel tests: a probe that tells "refused" (the SYN
reached the server's stack) from "timeout" (dropped on the way), an XdpState builder,
and small functions run inside the server namespace (netns.run_in_netns)."""
from __future__ import annotations

from pathlib import Path

from nodewall.engine.dataplane.xdp import maps as xdp_maps
from nodewall.engine.dataplane.xdp.backend import XdpBackend
from nodewall.engine.errors import Loc
from nodewall.engine.plan.desired import XdpInterface, XdpRule, XdpSetSource, XdpState
from nodewall.engine.profile.model import Failsafe, PortRange

from tests.conftest import in_ns

DENIED4, DENIED6 = "10.77.0.99", "fd77::99"

PROBE = r"""
import socket, sys
src, dst, port, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
s.settimeout(1.5)
s.bind((src, 0))
try:
    s.connect((dst, port))
    if kind == "udp":
        s.send(b"x")
        s.recv(10)
    print("connected")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
"""


def probe(pair, src: str, dst: str, port: int, kind: str = "tcp") -> str:
    return in_ns(pair.client, "python3", "-c", PROBE, src, dst, str(port), kind,
                 timeout=20).stdout.strip()


def fs(spec: str) -> Failsafe:
    proto, _, rest = spec.partition(":")
    port, _, net = rest.partition("@")
    return Failsafe(proto, int(port), net or None, Loc("test"))  # type: ignore[arg-type]


def state(mode: str = "auto", deny: tuple[str, ...] = (f"{DENIED4}/32", f"{DENIED6}/128"),
          files: tuple[Path, ...] = (), bit: int = 0, origin: str = "blocklist") -> XdpState:
    n4 = sum(1 for c in deny if ":" not in c)
    sets = (XdpSetSource(bit=bit, origin=origin, inline=deny, files=files,
                         count_v4=n4 + 1000 * len(files), count_v6=len(deny) - n4),)
    rules = (
        XdpRule("r-deny", "deny", 6, (), 1 << bit),
        XdpRule("r-allow-udp", "allow", 17, (PortRange(5000, 5001),), 0),
    )
    iface = XdpInterface("srv0", rules, (fs("tcp:22"), fs("udp:68")))
    return XdpState(mode=mode, interfaces=(iface,), sets=sets)  # type: ignore[arg-type]


def apply_xdp(xdp: XdpState):
    b = XdpBackend()
    res = b.apply(xdp)
    return res.modes, {k: (a.mode, a.owned) for k, a in b.attached().items()}


def xdp_counters():
    b = XdpBackend()
    return b.counters(), b.action_counters()


def xdp_generation():
    return XdpBackend().observe().meta["gen"]


def flush_xdp():
    b = XdpBackend()
    detached = b.flush()
    return detached, b.attached(), b.dir.exists()


def run_verdicts(frames: list[tuple[str, bytes]]) -> list[int]:
    import socket

    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    with xdp_maps.Pinned.open(XdpBackend().dir) as p:  # type: ignore[union-attr]
        out = []
        for name, f in frames:
            ctx = bpf.XdpMd(0, len(f), 0, socket.if_nametoindex(name), 0, 0)
            out.append(bpf.prog_test_run(p.prog_fd, f, ctx=ctx)[0])
        return out
