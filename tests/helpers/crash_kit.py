"""Helpers of the crash tests (issue 15): the whole of nodewall's part of a namespace's
kernel as one comparable text — iptables + ipsets, the nftables table, and XDP (the
attached program, the active generation's source maps and rule tables) — and a
process-group kill of a running command."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from nodewall.engine.system import netns

from tests.conftest import in_ns
from tests.helpers.safety_kit import fingerprint

# meta keys that name kernel objects or slots, not content: a recompiled program gets
# a new id, and the same content may live in either of the two generation slots
_XDP_META_IDS = ("prog_id", "gen")


def _content_only(key: str, value: object) -> object:
    """A meta value without the paths of the nets_files it was loaded from (the same
    content is recorded from the profile's file or from a generation's copy)."""
    if key != "tries" or not isinstance(value, dict):
        return value
    return {fam: {k: v for k, v in tri.items() if k != "sources"}
            for fam, tri in value.items()}


def _xdp_content() -> str:
    """In the namespace: nodewall's XDP as content — which interfaces run the pinned
    program (its tag, mode), the active generation's source maps per family (every
    key with its source bits) and rule tables, the metadata minus object ids."""
    from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
    from nodewall.engine.dataplane.xdp.backend import XdpBackend
    from nodewall.engine.dataplane.xdp.layout import BuildConfig
    from nodewall.engine.dataplane.xdp.map_io import dump_content
    from nodewall.engine.dataplane.xdp.maps import Pinned
    backend = XdpBackend()
    attached = {name: a for name, a in backend.attached().items() if a.owned}
    pinned = Pinned.open(backend.dir)
    if pinned is None:
        return "".join(f"\nxdp {name}: nodewall program {a.prog_id} without pins"
                       for name, a in sorted(attached.items()))
    with pinned as p:
        meta = p.read_meta()
        info = bpf.prog_info(p.prog_fd)
        gen = p.active_gen()
        lines = [f"xdp program tag {info.tag}"]
        lines += [f"xdp {name}: {a.mode} {'pinned' if a.prog_id == info.id else 'other'}"
                  for name, a in sorted(attached.items())]
        lines += [f"xdp meta {k} {_content_only(k, meta[k])!r}" for k in sorted(meta)
                  if k not in _XDP_META_IDS]
        for fam in (4, 6):
            with p.inner_maps(fam, gen) as fds:
                content = dump_content(fds[True], fds[False], fam)
            lines += [f"xdp v{fam} {key.hex()} {bits:#x}" for key, bits in sorted(content.items())]
        cfg = BuildConfig.from_json(meta["build"]) if meta.get("build") else None
        for name, iface in sorted(meta.get("ifaces", {}).items()):
            table = p.get_iface(cfg, iface["ifindex"], gen) if cfg else None
            lines.append(f"xdp rules {name} {bytes(table).hex() if table else None}")
    return "\n" + "\n".join(lines)


_NFT_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def nft_table(ns: str) -> str:
    """nodewall's nftables table as `nft list` prints it, counters dropped."""
    out = in_ns(ns, "nft", "list", "table", "inet", "nodewall", check=False)
    return "\n" + _NFT_COUNTER.sub("counter", out.stdout) if out.returncode == 0 else ""


def kernel_fingerprint(ns: str) -> str:
    """fingerprint() (iptables + ipsets) plus the nftables table and XDP."""
    return fingerprint(ns) + nft_table(ns) + netns.run_in_netns(ns, _xdp_content)


def kill_group(proc: subprocess.Popen) -> int:
    """kill -9 of the command's whole process group (it runs in a session of its own:
    start_new_session=True), as a shell's ^\\ or a supervisor's stop would; waits for
    the command itself and returns its exit status."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.wait()


def wait_for(path: Path, proc: subprocess.Popen, limit: float = 30.0) -> bool:
    """Until `path` exists (True) or the process ended (False); bounded."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if path.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False
