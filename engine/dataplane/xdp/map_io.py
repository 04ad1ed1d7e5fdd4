"""Batches in and out of the source maps: BPF_MAP_UPDATE_BATCH with fall-backs, the
threaded loader (parsing the next chunk overlaps the kernel's insert of this one:
ctypes drops the GIL), deletes and dumps with LPM-style keys."""
from __future__ import annotations

import ctypes
import errno
import queue
import threading
from collections.abc import Callable, Iterable

from nodewall.engine.dataplane.xdp import bpf_syscall as bpf
from nodewall.engine.dataplane.xdp.cidr_keys import (
    CHUNK_LINES,
    PREFIX_BYTES,
    Batch,
    batches_from_dict,
    key_size,
    width,
)
from nodewall.engine.errors import KernelError

_RETRY_SMALLER = (errno.ENOMEM, errno.EINVAL, errno.EOPNOTSUPP, 524)  # 524: ENOTSUPP


def _addr_of(b: bytes) -> int:
    return ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p).value or 0


def update_batch(fd: int, keys: bytes, values: bytes, count: int, ks: int,
                 chunk: int = CHUNK_LINES) -> None:
    """BPF_MAP_UPDATE_BATCH with a fall-back to smaller chunks and then single
    updates on ENOMEM (and single updates where the kernel has no batch op)."""
    ka, va = _addr_of(keys), _addr_of(values)
    off, step = 0, min(chunk, max(count, 1))
    while off < count:
        n = min(step, count - off)
        done, err = bpf.map_update_batch(fd, ka + off * ks, va + off * 8, n)
        off += done
        if err == 0:
            continue
        if err in _RETRY_SMALLER and step > 1:
            step = max(1, step // 8)
            continue
        if err == errno.ENOSPC:
            raise KernelError("XDP source trie is full",
                              hint="the set counts in the profile are lower than the "
                                   "files' contents; re-validate the profile")
        raise KernelError(f"BPF_MAP_UPDATE_BATCH failed: {errno.errorcode.get(err, err)}",
                          hint="check free memory (LPM entries are kernel memory) "
                               "and dmesg")


def write_batches(fds: dict[bool, int | None], batches: Iterable[Batch], family: int) -> None:
    """Upsert batches into open maps, fds[host] (the host hash or the trie; the
    caller checked that every map a batch needs exists)."""
    for b in batches:
        fd = fds[b.host]
        assert fd is not None
        update_batch(fd, b.keys, b.values, b.count, key_size(family, b.host))


def write_content(fds: dict[bool, int | None], content: dict[bytes, int], family: int) -> None:
    """Upsert LPM-style keyed contents (see write_batches)."""
    write_batches(fds, batches_from_dict(content, family), family)


def delete_keys(fd: int, keys: list[bytes], ks: int) -> None:
    for k in keys:
        buf = ctypes.create_string_buffer(k, ks)
        bpf.map_delete(fd, buf)


def delete_content(host_fd: int | None, trie_fd: int | None, keys: list[bytes],
                   family: int) -> None:
    """Delete LPM-style keys from the host hash (full-width prefixes) or the trie."""
    full = PREFIX_BYTES[width(family)]
    hosts = [k[4:] for k in keys if k[:4] == full]
    nets = [k for k in keys if k[:4] != full]
    if hosts and host_fd is not None:
        delete_keys(host_fd, hosts, key_size(family, True))
    if nets and trie_fd is not None:
        delete_keys(trie_fd, nets, key_size(family))


def load(fd_for: Callable[[bool], int], batches: Iterable[Batch],
         family: int) -> tuple[int, int]:
    """Feed batches to the maps from a worker thread while the caller's iterator
    parses the next one.  fd_for(host) gives the map of a batch (the host hash or the
    trie; it may create it on first use).  Returns the entries written (hosts, nets)."""
    q: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def worker() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            if failure:
                continue
            try:
                update_batch(fd_for(item.host), item.keys, item.values, item.count,
                             key_size(family, item.host))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                failure.append(exc)

    t = threading.Thread(target=worker, name="nw-xdp-load", daemon=True)
    t.start()
    total = [0, 0]
    try:
        for b in batches:
            if failure:
                break
            q.put(b)
            total[0 if b.host else 1] += b.count
    finally:
        q.put(None)
        t.join()
    if failure:
        raise failure[0]
    return total[0], total[1]


def dump_content(host_fd: int | None, trie_fd: int | None, family: int) -> dict[bytes, int]:
    """Both maps' entries with LPM-style keys (for deltas on small sets)."""
    out = dump(trie_fd, family) if trie_fd is not None else {}
    if host_fd is not None:
        full = PREFIX_BYTES[width(family)]
        out.update({full + k: v for k, v in dump(host_fd, family, True).items()})
    return out


def dump(fd: int, family: int, host: bool = False) -> dict[bytes, int]:
    """Every entry of a trie (host: of a host hash, keys = raw addresses)."""
    ks = key_size(family, host)
    key = ctypes.create_string_buffer(ks)
    nxt = ctypes.create_string_buffer(ks)
    val = ctypes.c_uint64()
    out: dict[bytes, int] = {}
    first = True
    for _ in range(1 << 26):  # bounded: far above any trie we create
        if not bpf.map_next_key(fd, None if first else key, nxt):
            break
        first = False
        ctypes.memmove(key, nxt, ks)
        if bpf.map_lookup(fd, key, val):
            out[key.raw] = val.value
    return out
