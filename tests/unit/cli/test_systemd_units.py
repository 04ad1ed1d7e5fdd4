"""The shipped systemd units parse, and their ExecStart lines parse with the CLI's
own argument parser."""
from __future__ import annotations

import configparser
import shlex

from nodewall.engine.cli.main import build_parser

from tests.conftest import REPO

UNITS = REPO / "engine" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment]
    cp.read(UNITS / name)
    return cp


def test_boot_unit_runs_before_the_network_and_parses():
    u = _unit("nodewall.service")
    assert u["Unit"]["Before"] == "network-pre.target"
    assert u["Unit"]["Wants"] == "network-pre.target"
    assert u["Unit"]["DefaultDependencies"] == "no"
    assert u["Service"]["Type"] == "oneshot"
    args = shlex.split(u["Service"]["ExecStart"])
    ns = build_parser().parse_args(args[1:])
    assert ns.command == "agent" and ns.once


def test_agent_unit_parses():
    u = _unit("nodewall-agent.service")
    assert "nodewall.service" in u["Unit"]["After"]
    ns = build_parser().parse_args(shlex.split(u["Service"]["ExecStart"])[1:])
    assert ns.command == "agent" and not ns.once and ns.interval == 30
