"""Load ipsets through ONE streaming `ipset -exist restore`, atomically for readers.

Full load: a temp set `nw-t-<hash>` sized for the expected count (maxelem >=
max(65536, 1.25 x count), hashsize a power of two near count/2, so the kernel
neither rehashes mid-load nor says "Hash is full") is created and filled, then
swapped with the live set (or renamed to it when new) and destroyed — all in the
same restore stream, after the last add.  If any line fails, ipset stops before the
swap: the live set is untouched and the temp set is destroyed.

Members are never Python objects: nets_file chunks (engine.nets.scan, C-speed
cleaning) get `add NAME ` prepended with one bytes.replace per chunk and are written
to ipset's stdin while ipset parses the previous chunk (two cores at work).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from nodewall.engine.dataplane.ipsets.observe import ObservedSet, ipset_binary, run_ipset
from nodewall.engine.errors import KernelError
from nodewall.engine.nets.scan import iter_member_chunks
from nodewall.engine.plan.desired import IpSetSpec

TEMP_PREFIX = "nw-t-"
MIN_MAXELEM = 65536
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20


def temp_name(name: str) -> str:
    return TEMP_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:12]


def sizing(count: int) -> tuple[int, int]:
    """(hashsize, maxelem) for a hash set expected to hold `count` members."""
    maxelem = max(MIN_MAXELEM, -(-count * 5 // 4))
    half = max(1, count // 2)
    lo = 1 << (half.bit_length() - 1)
    nearest = lo if half - lo <= 2 * lo - half else 2 * lo
    return min(max(1024, nearest), 1 << 26), maxelem


def create_line(name: str, spec: IpSetSpec) -> bytes:
    if spec.kind == "list:set":
        return f"create {name} list:set size {max(8, len(spec.members))}\n".encode()
    hashsize, maxelem = sizing(spec.expected_count)
    fam = "inet" if spec.family == 4 else "inet6"
    return (f"create {name} hash:net family {fam} hashsize {hashsize} "
            f"maxelem {maxelem}\n").encode()


def prefixed(chunk: bytes, prefix: bytes) -> bytes:
    """b"a\\nb\\n" -> b"<prefix>a\\n<prefix>b\\n" at C speed (chunk ends with \\n)."""
    return prefix + chunk[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


def member_chunks(spec: IpSetSpec) -> Iterator[bytes]:
    """b"CIDR\\n" chunks of the spec's members of its family (inline first)."""
    if spec.kind == "list:set":
        if spec.members:
            yield ("\n".join(spec.members) + "\n").encode()
        return
    if spec.inline:
        yield ("\n".join(spec.inline) + "\n").encode()
    for path in spec.files:
        yield from iter_member_chunks(path, spec.family)


@dataclass(frozen=True)
class LoadResult:
    name: str
    lines: int  # member lines streamed (duplicates included)
    swapped: bool  # True: replaced a live set; False: created it


def _restore(commands: Iterable[bytes], what: str) -> int:
    """Stream `commands` into one `ipset -exist restore`; return the add-line count."""
    proc = subprocess.Popen([ipset_binary(), "-exist", "restore"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    with contextlib.suppress(OSError):  # a bigger pipe: fewer context switches
        fcntl.fcntl(proc.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
    lines = 0
    broken = False
    try:
        for block in commands:
            lines += block.count(b"\n")
            try:
                proc.stdin.write(block)
            except BrokenPipeError:
                broken = True
                break
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace").strip()
    rc = proc.wait()
    if rc != 0 or broken:
        raise KernelError(f"ipset restore ({what}) failed: {err or 'ipset exited early'}",
                          hint="the live set is unchanged; the line number counts the "
                               "create line first")
    return lines


def full_load(spec: IpSetSpec, live: ObservedSet | None) -> LoadResult:
    """Build the whole set in a temp set, then swap it in (or rename it, when new)."""
    tmp = temp_name(spec.name)
    run_ipset("destroy", tmp, check=False)  # a leftover of an interrupted load
    if live is not None and (live.kind != spec.kind
                             or (spec.kind != "list:set" and live.family != spec.family)):
        if live.references:
            raise KernelError(
                f"ipset {spec.name} is {live.kind} (family {live.family}) and in use by "
                f"{live.references} rule(s); it cannot become {spec.kind} v{spec.family}",
                hint="apply a profile without it first (or `nodewall flush`), then again")
        finish = f"destroy {spec.name}\nrename {tmp} {spec.name}\n".encode()
    elif live is not None:
        finish = f"swap {tmp} {spec.name}\ndestroy {tmp}\n".encode()
    else:
        finish = f"rename {tmp} {spec.name}\n".encode()
    prefix = f"add {tmp} ".encode()

    def commands() -> Iterator[bytes]:
        yield create_line(tmp, spec)
        for chunk in member_chunks(spec):
            yield prefixed(chunk, prefix)
        yield finish

    try:
        lines = _restore(commands(), f"load {spec.name}")
    except BaseException:
        run_ipset("destroy", tmp, check=False)
        raise
    return LoadResult(spec.name, lines - 1 - finish.count(b"\n"), live is not None)


def apply_delta(name: str, added: Iterable[str], removed: Iterable[str]) -> int:
    """Adds, then deletes, in one restore (-exist: re-applying a delta is harmless).
    Returns the number of lines sent."""
    add = "".join(f"add {name} {m}\n" for m in added).encode()
    rem = "".join(f"del {name} {m}\n" for m in removed).encode()
    if not add and not rem:
        return 0
    return _restore((add, rem), f"update {name}")
