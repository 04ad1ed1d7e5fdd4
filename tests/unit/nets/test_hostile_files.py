"""Hostile nets_files (issue 15, item 12 and the low items): only regular files are
read (a FIFO would block forever with the lock held, /dev/zero never ends), a line is
at most MAX_LINE bytes and the file at most MAX_NETS_FILE_BYTES, memory stays one
chunk plus one line, errors never print a line of a file that is not a profile, and
a symlink loop is called one."""
from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
from nodewall.engine.errors import InputError, Loc
from nodewall.engine.nets import lines
from nodewall.engine.nets.scan import scan_nets_file

LOC = Loc("p.toml", 3, 13)


def scan(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        scan_nets_file(path, LOC, 1 << 30)
    return info.value


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes: a plain open() would block forever
    err = scan(fifo)
    assert err.loc == LOC and "is a FIFO (named pipe), not a regular file" in err.message
    assert err.exit_code == 2


def test_a_device_is_refused() -> None:
    err = scan(Path("/dev/zero"))
    assert "is a character device, not a regular file" in err.message


def test_a_symlink_loop_is_called_one(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert "is a symlink loop" in scan(tmp_path / "a").message


def test_a_symlink_to_a_regular_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("192.0.2.0/24\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert scan_nets_file(tmp_path / "link.txt", LOC, 10).count_v4 == 1


def test_a_long_line_is_located(tmp_path: Path) -> None:
    path = tmp_path / "n.txt"
    path.write_text("192.0.2.0/24\n10.0.0.1  # " + "x" * 2000 + "\n")
    err = scan(path)
    assert err.loc == Loc(str(path), 2, lines.MAX_LINE + 1)
    assert f"line longer than {lines.MAX_LINE} bytes" in err.message


def test_no_newline_at_all_stops_after_one_line_with_bounded_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 256 MiB file without a newline (sparse: no disk used) is refused at its first
    chunk; the reader never holds more than a chunk plus a line."""
    monkeypatch.setattr(lines, "CHUNK", 1 << 20)
    path = tmp_path / "one-line.txt"
    with open(path, "wb") as fh:
        fh.truncate(256 << 20)  # NUL bytes, no newline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err = scan(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert err.loc == Loc(str(path), 1, lines.MAX_LINE + 1)
    assert grown_kib < 64 << 10  # far below the file's 256 MiB


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_NETS_FILE_BYTES", 1000)
    from nodewall.engine.nets import scan as scan_mod
    monkeypatch.setattr(scan_mod, "MAX_NETS_FILE_BYTES", 1000)
    path = tmp_path / "n.txt"
    path.write_text("192.0.2.1\n" * 200)
    err = scan(path)
    assert "is 2000 bytes, more than the limit of 1000 bytes" in err.message


def test_errors_never_print_a_line_of_a_non_profile_file(tmp_path: Path) -> None:
    secret = "root:$6$Zm9vYmFy$c2VjcmV0aGFzaA:19000:0:99999:7:::"
    path = tmp_path / "shadow"
    path.write_text(secret + "\n")
    err = scan(path)
    assert err.loc == Loc(str(path), 1, 1)
    assert "Zm9v" not in err.render() and "99999" not in err.render()
    path.write_text("10.0.0.1 hunter2-password\n")
    err = scan(path)
    assert "hunter2" not in err.render() and "'10.0.0.1'" in err.render()
