"""The automation contract without root: distinct exit codes, JSON errors on stdout
when JSON was asked ({"error": {message, hint, file, line, col, kind}, "exit": N}),
usage errors on 64, and a --help without internal commands."""
from __future__ import annotations

import json

import pytest
from nodewall.engine.cli.main import main
from nodewall.engine.errors import ExitCode


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return int(code), out.out, out.err


def test_the_exit_codes_are_distinct_and_stable():
    codes = {c.name: int(c) for c in ExitCode}
    assert codes == {"OK": 0, "FAILED": 1, "BAD_INPUT": 2, "NOTHING_TO_DO": 3,
                     "LOCK_BUSY": 4, "NETNS_NOT_FOUND": 5, "NOTHING_PENDING": 6,
                     "FOREIGN_OBJECT": 7, "USAGE": 64}


def test_bad_input_as_json_names_file_line_col(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[settings]\nbackend = "iptables"\nfailsafe_inbound = ["tcp:99999"]\n')
    code, out, err = _run(capsys, "validate", "--output", "json", str(bad))
    doc = json.loads(out)
    assert code == doc["exit"] == 2
    e = doc["error"]
    assert (e["file"], e["line"], e["kind"]) == (str(bad), 3, "InputError") and e["col"] > 1
    assert e["message"] and f"{bad}:3:" in err  # humans still read stderr


def test_text_errors_print_nothing_on_stdout(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[settings\n")
    code, out, err = _run(capsys, "validate", str(bad))
    assert code == 2 and out == "" and f"{bad}:1:" in err


@pytest.mark.parametrize("argv", [("apply",), ("status", "--bogus"), ("explain", "10.0.0.1"),
                                  ("diff",), ("diff", "--to", "3")])
def test_usage_errors_exit_64_not_2(capsys, argv):
    code, out, _err = _run(capsys, *argv, "-o", "json") if argv[0] != "status" \
        else _run(capsys, *argv)
    assert code == ExitCode.USAGE == 64
    if argv[0] != "status":
        assert json.loads(out)["error"]["kind"] == "UsageError"


def test_an_unknown_namespace_exits_5(capsys):
    code, out, err = _run(capsys, "--netns", "nwt-no-such-ns-here", "history", "-o", "json")
    assert code == 5 and "does not exist" in err
    assert json.loads(out) == {"error": json.loads(out)["error"], "exit": 5}
    assert json.loads(out)["error"]["kind"] == "NetnsNotFound"


def test_nothing_applied_is_exit_6_for_explain_and_show(capsys, tmp_path):
    state = ["--state-dir", str(tmp_path / "state")]
    code, out, _ = _run(capsys, *state, "explain", "10.0.0.1", "10.0.0.2:22", "-o", "json")
    assert code == 6 and json.loads(out)["error"]["kind"] == "NothingPending"
    code, out, _ = _run(capsys, *state, "show", "3", "-o", "json")
    assert code == 6 and "not recorded" in json.loads(out)["error"]["message"]
    code, out, _ = _run(capsys, *state, "history", "-o", "json")
    assert code == 0 and json.loads(out) == {"schema": 1, "generations": []}


def test_help_lists_no_internal_command_and_explains_intervals(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "==SUPPRESS==" not in text and "_confirm-watcher" not in text
    assert "explain" in text and "history" in text
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert "default 2" in capsys.readouterr().out
