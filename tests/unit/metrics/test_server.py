"""--listen parsing, and the HTTP endpoint on loopback (an ephemeral port): /metrics
parses, /healthz, /readyz with its reason, 404, a port already taken; the CLI's exit 2
on a bad --listen."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from nodewall.engine.errors import EnvironmentProblem, ExitCode, InputError
from nodewall.engine.metrics.server import ListenAddress, parse_listen

from tests.helpers.metrics_kit import MetricsRig, value

from .conftest import write_profile


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:9617", ListenAddress("127.0.0.1", 9617)),
    ("[::1]:9000", ListenAddress("::1", 9000)),
    (":9617", ListenAddress("0.0.0.0", 9617)),
    ("localhost:0", ListenAddress("localhost", 0)),
    ("10.0.0.1:65535", ListenAddress("10.0.0.1", 65535)),
])
def test_good_listen_values(text: str, want: ListenAddress) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text, why", [
    ("9617", "no port"),
    ("127.0.0.1", "no port"),
    ("127.0.0.1:", "is not a number"),
    ("127.0.0.1:http", "is not a number"),
    ("127.0.0.1:65536", "is not a number from 0 to 65535"),
    ("::1:9617", "put an IPv6 address in brackets"),
    ("[::1]9617", "must be followed by :PORT"),
    ("bad host!:80", "neither an IP address nor a host name"),
])
def test_bad_listen_values_are_input_errors(text: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        parse_listen(text, "--metrics-listen")
    rendered = info.value.render()
    assert why in rendered and rendered.startswith(f"<command line>:1:1: --metrics-listen {text!r}")
    assert info.value.exit_code == ExitCode.BAD_INPUT


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_endpoint_serves_metrics_health_and_readiness(mrig: MetricsRig) -> None:
    exporter = mrig.exporter()
    server = exporter.server(ListenAddress("127.0.0.1", 0))
    bound = server.start()
    try:
        assert _get(bound.url("/healthz")) == (200, "ok\n")
        assert _get(bound.url("/readyz")) == (503, "not ready: no generation is applied\n")
        mrig.service.apply([write_profile(mrig, "a", 80)])
        assert _get(bound.url("/readyz")) == (200, "ready: generation 1 in place\n")
        code, text = _get(bound.url("/metrics"))
        assert code == 200 and value(text, "nodewall_generation") == 1
        assert _get(bound.url("/nope"))[0] == 404

        taken = exporter.server(bound)
        with pytest.raises(EnvironmentProblem, match="cannot listen on 127.0.0.1"):
            taken.start()
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [
    ["metrics", "--listen", "nonsense"],
    ["agent", "--profiles", "/nonexistent", "--metrics-listen", "1.2.3.4:x"],
])
def test_the_cli_exits_2_on_a_bad_listen_value(argv: list[str], tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nodewall.engine.cli.main",
                           "--state-dir", str(tmp_path / "state"), *argv],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "listen" in proc.stderr and "hint: give HOST:PORT" in proc.stderr
    assert not (tmp_path / "state").exists()
