"""Atomic writes keep the file's mode and leave no temp file; a compare-and-swap write
never overwrites an edit made on disk since the content was read."""
import stat
from pathlib import Path

import pytest
from nodewall.engine.errors import ConcurrentEdit
from nodewall.engine.system.files import atomic_write_text, replace_if_unchanged


def test_atomic_write_keeps_the_mode_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text("old\n")
    target.chmod(0o600)
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]


def test_replace_if_unchanged_writes_over_what_was_read(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text("read\n")
    replace_if_unchanged(target, "read\n", "mine\n")
    assert target.read_text() == "mine\n"


def test_an_edit_made_meanwhile_is_not_overwritten(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text("read\n")
    target.write_text("read\nappended by someone else\n")
    with pytest.raises(ConcurrentEdit) as err:
        replace_if_unchanged(target, "read\n", "mine\n")
    assert target.read_text() == "read\nappended by someone else\n"
    assert "changed on disk" in err.value.render()


def test_open_regular_refuses_what_could_block_or_never_end(tmp_path: Path) -> None:
    import errno
    import os

    from nodewall.engine.system.files import (
        FileTooBig,
        NotRegularFile,
        describe_open_error,
        open_regular,
        read_regular,
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device"),
                       (tmp_path, "a directory")):
        with pytest.raises(NotRegularFile) as info:
            open_regular(path)
        assert describe_open_error(info.value) == f"is {kind}, not a regular file"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    with pytest.raises(FileTooBig):
        read_regular(big, 99)
    assert read_regular(big, 100) == b"x" * 100
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OSError) as loop:
        open_regular(tmp_path / "loop")
    assert loop.value.errno == errno.ELOOP
    assert describe_open_error(loop.value) == "is a symlink loop (too many levels of symbolic links)"
