"""Atomic writes keep the file's mode and leave no temp file; a compare-and-swap write
never overwrites an edit made on disk since the content was read."""
import stat

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
