"""`nodewall completion bash|zsh`: the scripts parse, name every subcommand, and
complete commands, profile paths (*.toml) and namespace names."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest
from nodewall.engine.cli.main import build_parser

NODEWALL = [sys.executable, "-m", "nodewall.engine.cli.main"]


def script(shell: str) -> str:
    proc = subprocess.run([*NODEWALL, "completion", shell], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def public_subcommands() -> list[str]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    hidden = {c.dest for c in sub._choices_actions if c.help == argparse.SUPPRESS}
    names = [n for n in sub.choices if not n.startswith("_") and n not in hidden]
    assert {"apply", "import", "export", "completion", "status"} <= set(names)
    return names


def test_bash_script_is_valid_and_names_every_subcommand(tmp_path):
    text = script("bash")
    path = tmp_path / "nodewall.bash"
    path.write_text(text)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True,
                           timeout=30, check=False)
    assert check.returncode == 0, check.stderr
    (line,) = [ln for ln in text.splitlines() if ln.startswith("_shtab_nodewall_subparsers=")]
    named = line.split("=(", 1)[1].rstrip(")").split()
    assert set(public_subcommands()) <= set(named)


def complete_bash(tmp_path, words: list[str], cwd=None) -> list[str]:
    """What bash offers for the last word of `words` (the script sourced for real)."""
    path = tmp_path / "nodewall.bash"
    path.write_text(script("bash"))
    line = " ".join(words)
    code = (f"source {path}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
            f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT={len(line)}; "
            "_shtab_nodewall; printf '%s\\n' \"${COMPREPLY[@]}\"")
    proc = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30,
                          check=False, cwd=cwd)
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completes_commands_and_options(tmp_path):
    assert "import" in complete_bash(tmp_path, ["nodewall", "im"])
    assert "--skip-unsupported" in complete_bash(tmp_path, ["nodewall", "import", "--sk"])


def test_bash_completes_profile_paths_toml_only(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ("redis.toml", "notes.txt", "rules.yaml"):
        (work / name).write_text("")
    (work / "sub").mkdir()
    offered = complete_bash(tmp_path, ["nodewall", "validate", ""], cwd=work)
    assert "redis.toml" in offered and "notes.txt" not in offered
    assert any(o.startswith("sub") for o in offered)  # directories, to walk into
    yamls = complete_bash(tmp_path, ["nodewall", "import", "calico", ""], cwd=work)
    assert "rules.yaml" in yamls and "redis.toml" not in yamls


def test_namespace_names_come_from_run_netns():
    text = script("bash")
    assert "/run/netns" in text and "_shtab_nodewall___netns_COMPGEN" in text


def test_zsh_script_is_valid_and_names_every_subcommand(tmp_path):
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (make setup installs it)")
    text = script("zsh")
    path = tmp_path / "_nodewall"
    path.write_text(text)
    check = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True,
                           timeout=30, check=False)
    assert check.returncode == 0, check.stderr
    for name in public_subcommands():
        assert f"    {name}:'" in text, name
    assert "_files -g '(*.toml)'" in text and "/run/netns" in text
