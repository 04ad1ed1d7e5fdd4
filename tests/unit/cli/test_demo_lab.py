"""`nodewall demo` and a lab that is already running: the answer without a terminal
is "reuse", --new-lab replaces it, a terminal is asked."""
from __future__ import annotations

import io
from types import SimpleNamespace

from nodewall.engine.cli import commands

RUNNING = SimpleNamespace(server_ns="nwlab-srv", client_ns="nwlab-cli")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_the_running_lab_is_reused(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert commands._running_lab_answer(False, RUNNING) == "reuse"
    assert "reusing the running lab (nwlab-srv)" in capsys.readouterr().err
    assert commands._running_lab_answer(True, RUNNING) == "new"


def test_a_terminal_is_asked(monkeypatch):
    for typed, answer in (("r\n", "reuse"), ("n\n", "new"), ("q\n", "quit"), ("\n", "quit")):
        monkeypatch.setattr("sys.stdin", Tty(typed))
        assert commands._running_lab_answer(False, RUNNING) == answer
