"""load_profiles(texts=…): unsaved content is validated in memory, errors name the
real path, nets_file paths resolve beside it, and nothing is written to the folder."""
import pytest
from nodewall.engine.errors import InputErrors
from nodewall.engine.profile.loader import load_profiles

from tests.conftest import REPO

PROFILES = REPO / "profiles"


def test_text_replaces_the_file_content(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text('[[host_endpoints]]\nname = "a"\ninterface = "*"\n')
    profile = load_profiles([target], texts={str(target): '[[host_endpoints]]\n'
                                                          'name = "b"\ninterface = "*"\n'})
    assert [h.name for h in profile.host_endpoints] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_errors_in_the_text_name_the_real_path(tmp_path):
    target = tmp_path / "p.toml"
    target.write_text("")
    with pytest.raises(InputErrors) as err:
        load_profiles([target], texts={str(target): '[[host_endpoints]]\nname = 3\n'})
    assert all(e.loc.file == str(target) for e in err.value.errors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_nets_file_resolves_beside_the_real_path():
    target = PROFILES / "redis-host.toml"
    profile = load_profiles([target], texts={str(target): target.read_text()})
    assert any(s.nets_file is not None for s in profile.network_sets)
