"""The TUI in a real terminal: tmux (80x24, a private tmux server) runs
`nodewall --netns <lab server> --state-dir <tmp> tui <profile>` against a throwaway
lab; the test reads the screen with capture-pane and types with send-keys.

- the applied profile's interfaces, conntrack count and rule hits are on screen;
- the Redis untracked pair is opened for a second port in the TOML editor, saved,
  applied and kept; the new rule (new id: ids follow the content) counts the TCP
  connections the test then makes to that port;
- NO_COLOR=1 leaves no colour codes; TEXTUAL_COLOR_SYSTEM=standard only the 16
  basic colours; `q` quits with exit code 0 each time."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO, in_ns

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not IS_ROOT, reason="kernel test: needs root for namespaces"),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

NEW_PORT = 7001
# the table, the endpoint's interface and the chain (nw-rfi-eth0) cells
RAW_CELL = r"\s+raw\s+eth0\s+rfi\s+"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def nodewall_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "nodewall"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nodewall.engine.cli.main"]


class Lab:
    def __init__(self, info, work: Path):
        self.ns, self.client_ns = info.server_ns, info.client_ns
        self.work = work
        self.profile = work / "redis-host.toml"
        self.state = work / "state"

    def nodewall(self, *args: str) -> str:
        return subprocess.run([*nodewall_cmd(), "--netns", self.ns, "--state-dir",
                               str(self.state), *args], capture_output=True, text=True,
                              timeout=120, check=True).stdout

    def status(self) -> dict:
        return json.loads(self.nodewall("status", "--output", "json"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from nodewall.engine.lab import lifecycle as lab_mod
    prefix = f"nwt{uuid.uuid4().hex[:6]}"
    info = lab_mod.lab_up(prefix, duration=120, traffic=False)  # the test makes the traffic
    try:
        work = tmp_path_factory.mktemp("tui-tmux")
        for name in ("redis-host.toml", "blocklist.txt"):
            shutil.copy(REPO / "profiles" / name, work / name)
        lab = Lab(info, work)
        lab.nodewall("apply", str(lab.profile))
        for _ in range(5):  # hits on the untracked Redis rule, a tracked ping
            in_ns(lab.client_ns, "redis-cli", "-h", "10.0.0.1", "-p", "6379", "PING",
                  timeout=10)
        in_ns(lab.client_ns, "ping", "-c", "2", "-W", "1", "10.0.0.1", check=False)
        yield lab
    finally:
        lab_mod.lab_down(prefix)


class Tmux:
    """One detached 80x24 session on a private tmux server (-L), killed in close()."""

    def __init__(self, command: list[str], env: dict[str, str | None], rc_file: Path):
        self.sock = f"nwt{uuid.uuid4().hex[:8]}"
        self.rc_file = rc_file
        sets = [f"{k}={v}" for k, v in env.items() if v is not None]
        unsets = [a for k, v in env.items() if v is None for a in ("-u", k)]
        inner = " ".join(map(_quote, ["env", *unsets, *sets, *command]))
        # the exit code goes to a file; the TUI's own stderr (its screen) is left alone
        script = f"{inner}; echo $? > {_quote(str(rc_file))}"
        self.tmux("new-session", "-d", "-s", "nw", "-x", "80", "-y", "24", "sh", "-c", script)

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True,
                              text=True, timeout=20, check=check)

    def screen(self, escapes: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", "nw", *(["-e"] if escapes else [])]
        proc = self.tmux(*args, check=False)
        return proc.stdout if proc.returncode == 0 else ""

    def keys(self, *keys: str, literal: bool = False, repeat: int = 1) -> None:
        extra = ["-N", str(repeat)] if repeat > 1 else []
        self.tmux("send-keys", "-t", "nw", *extra, *(["-l"] if literal else []), *keys)
        time.sleep(0.15)  # let the app read one key group before the next

    def wait(self, check: Callable[[str], bool], limit: float = 20.0) -> str:
        """The screen once check(screen) holds; fails with the last screen after LIMIT s."""
        deadline = time.monotonic() + limit
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"screen never matched; last screen:\n{text}")

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "nw", check=False).returncode == 0

    def quit_with_q(self) -> str:
        """Press q; the session ends; returns the app's exit code as written."""
        self.keys("q")
        deadline = time.monotonic() + 15
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not self.alive(), f"q did not quit:\n{self.screen()}"
        return self.rc_file.read_text().strip() if self.rc_file.exists() else "(none)"

    def close(self) -> None:
        self.tmux("kill-server", check=False)


def _quote(word: str) -> str:
    import shlex
    return shlex.quote(word)


def start_tui(lab: Lab, tmp_path: Path, profile: Path | None = None,
              **env: str | None) -> Tmux:
    env.setdefault("NO_COLOR", None)
    env.setdefault("TEXTUAL_COLOR_SYSTEM", None)
    cmd = [*nodewall_cmd(), "--netns", lab.ns, "--state-dir", str(lab.state), "tui",
           str(profile or lab.profile)]
    return Tmux(cmd, env, tmp_path / "rc")


def redis_rules(report: dict, direction: str) -> list[dict]:
    return [r for r in report["rules"] if r["policy"] == "redis-untracked"
            and r["direction"] == direction and r["index"] == 0]


def connect_many(lab: Lab, port: int, n: int) -> int:
    """n TCP connections from the client to a listener on PORT in the server
    namespace; returns how many got the listener's greeting."""
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns, sys.executable, "-c",
         ("import socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          f"s.bind(('0.0.0.0', {port})); s.listen(64); s.settimeout(10)\n"
          "print('ready', flush=True)\n"
          f"for _ in range({n}):\n"
          "    c, _ = s.accept(); c.sendall(b'hi'); c.close()\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        code = ("import socket\nok = 0\n"
                f"for _ in range({n}):\n"
                f"    c = socket.create_connection(('10.0.0.1', {port}), timeout=3)\n"
                "    ok += c.recv(8) == b'hi'; c.close()\n"
                "print(ok)\n")
        return int(in_ns(lab.client_ns, sys.executable, "-c", code, timeout=60).stdout)
    finally:
        listener.kill()
        listener.wait()


def test_edit_apply_keep_and_the_new_rule_counts(lab, tmp_path):
    before = lab.status()
    old_in = redis_rules(before, "ingress")
    assert before["generation"] == 1 and old_in
    term = start_tui(lab, tmp_path)
    try:
        dash = term.wait(lambda s: "gen 1" in s and "redis-untracked" in s)
        eth0 = next(line for line in dash.splitlines() if line.split()[:1] == ["eth0"])
        assert "10.0.0.1/24" in eth0 and "nw_xdp" in eth0 and "uplink" in eth0
        ct = re.search(r"^(\d+)/(\d+) \[[#-]+\]", dash, re.MULTILINE)
        assert ct and int(ct.group(2)) > 0, dash
        assert re.search(r"redis-untracked\s+in\[0\]\s+(raw|xdp)\s+\S+\s+allow tcp", dash)

        term.keys("2")  # rule hits: the PINGs on the untracked rule
        rules = term.wait(lambda s: "sorted by rate" in s)
        hits = re.search(r"redis-untracked\s+in\[0\]\s+tcp from.*?" + RAW_CELL + r"(\S+)", rules)
        assert hits and hits.group(1) != "0", rules
        # an address of blocklist.txt (no CIDR of a rule holds it): the engine looks in
        # the sets and finds drop-blocklist's rule, in XDP and in its raw backstop
        term.keys("/")
        term.keys("198.51.100.77", literal=True)
        found = term.wait(lambda s: "2/" in s and "looking in the sets" not in s)
        rows = [ln for ln in found.splitlines() if re.match(r"\S+\s+(in|eg)\[\d+\]", ln)]
        assert len(rows) == 2 and all(r.startswith("drop-blocklist") for r in rows), found
        term.keys("Escape")
        term.wait(lambda s: "redis-untracked" in s and "filter:" not in s)
        # explain from the command palette: the client's Redis packet, the same walk
        # as `nodewall explain` (the untracked allow decides, through the mark)
        term.keys("C-p")
        term.wait(lambda s: "Search for commands" in s or "palette" in s.lower())
        term.keys("Explain a packet", literal=True)
        term.keys("Enter")
        term.wait(lambda s: "Explain a packet: SRC DST" in s)
        term.keys("10.0.0.2 10.0.0.1:6379/tcp eth0", literal=True)
        term.keys("Enter")
        said = term.wait(lambda s: "verdict:" in s)
        assert re.search(r"verdict: ALLOW at (raw|xdp) by redis-untracked", said), said
        term.keys("Escape")
        term.wait(lambda s: "Explain a packet" not in s and "sorted by rate" in s)

        # the TOML editor: line 44 is redis-untracked's ingress destination, line 49
        # its egress (return) source; open both for NEW_PORT
        term.keys("4")
        term.wait(lambda s: "[saved]" in s and "valid" in s)
        term.keys("Tab")  # from the tabs into the editor (view mode: keys are not text)
        term.keys("?")  # ... so ? opens the help instead of landing in the TOML
        term.wait(lambda s: "Global keys" in s)
        term.keys("Escape")  # alone: ESC read together with the next key is alt+key
        term.wait(lambda s: "Global keys" not in s)
        term.keys("Enter")  # start editing
        term.wait(lambda s: "EDITING" in s)
        term.keys("C-Home")
        for down in (43, 5):
            term.keys("Down", repeat=down)
            term.keys("C-e")
            term.keys("Left", repeat=3)  # before "] }"
            term.keys(f", {NEW_PORT}", literal=True)
        term.keys("C-s")
        term.wait(lambda s: "[saved]" in s)
        text = lab.profile.read_text().splitlines()
        assert text[43] == f"  destination = {{ ports = [6379, {NEW_PORT}] }}"
        assert text[48] == f"  source = {{ ports = [6379, {NEW_PORT}] }}"

        term.keys("Escape")  # stop editing: digits switch screens again
        term.wait(lambda s: "EDITING" not in s)
        term.keys("5")
        term.keys("d")
        plan = term.wait(lambda s: "rules +2 -2" in s)
        assert f"--dports 6379,{NEW_PORT}" in plan
        term.keys("a")
        term.wait(lambda s: "Apply these profiles?" in s)
        term.keys("y")
        term.wait(lambda s: "KEEP generation 2? K keep / R revert" in s, limit=60)
        term.keys("k")  # a lone k (k9s: up) decides nothing
        term.keys("K")
        term.wait(lambda s: "Keep generation 2?" in s)
        assert lab.status()["pending_confirm"] is not None
        term.keys("y")
        term.wait(lambda s: "generation 2 kept" in s)

        report = lab.status()
        assert report["generation"] == 2 and report["pending_confirm"] is None
        new_in = redis_rules(report, "ingress")
        assert {r["id"] for r in new_in}.isdisjoint({r["id"] for r in old_in})
        assert all(f"6379,{NEW_PORT}" in r["summary"] for r in new_in)
        raw = next(r for r in new_in if r["backend"] == "raw")
        assert connect_many(lab, NEW_PORT, 10) == 10
        after = next(r for r in redis_rules(lab.status(), "ingress")
                     if r["id"] == raw["id"] and r["backend"] == "raw")
        # no other traffic in the lab: every connection adds its SYN, ACKs and FIN
        assert after["packets"] - raw["packets"] >= 30

        # and the TUI shows the new count (raw backend row on the rules screen)
        from nodewall.tui.fmt import human
        term.keys("2")
        term.wait(lambda s: re.search(
            r"redis-untracked\s+in\[0\]\s+tcp from.*?" + RAW_CELL
            + rf"{re.escape(human(after['packets']))}\s",
            s) is not None)
        assert term.quit_with_q() == "0"
    finally:
        term.close()


def _codes(screen: str) -> set[int]:
    return {int(p) for params in SGR.findall(screen) for p in (params or "0").split(";") if p}


@pytest.mark.parametrize("env", ["NO_COLOR=1", "TEXTUAL_COLOR_SYSTEM=standard"])
def test_colour_settings_and_q(lab, tmp_path, env):
    key, value = env.split("=")
    term = start_tui(lab, tmp_path, **{key: value})
    try:
        term.wait(lambda s: "redis-untracked" in s and "eth0" in s)
        screens = []
        for k in ("1", "2", "4", "5"):
            term.keys(k)
            time.sleep(1.0)
            screens.append(term.screen(escapes=True))
        plain = term.screen()
        assert "profiles:" in plain and str(lab.profile.name) in plain  # apply screen
        codes = set().union(*map(_codes, screens))
        if key == "NO_COLOR":
            # attributes and "default colour" only: bold, dim, underline, reverse
            assert codes <= {0, 1, 2, 4, 7, 22, 24, 27, 39, 49}, codes
            assert 7 in codes  # the current screen and selections in reverse video
        else:
            basic = {*range(30, 38), *range(40, 48), *range(90, 98), *range(100, 108)}
            assert codes & basic
            assert not codes & {38, 48}, codes  # no 256-colour or RGB codes
        assert term.quit_with_q() == "0"
    finally:
        term.close()


def test_a_file_edited_on_disk_meanwhile_is_not_overwritten(lab, tmp_path):
    profile = tmp_path / "redis-host.toml"
    shutil.copy(lab.profile, profile)
    shutil.copy(lab.work / "blocklist.txt", tmp_path / "blocklist.txt")
    term = start_tui(lab, tmp_path, profile)
    try:
        term.wait(lambda s: "redis-untracked" in s)
        term.keys("4")
        term.wait(lambda s: "[saved]" in s and "valid" in s)
        term.keys("Tab")  # into the editor
        term.keys("Enter")  # start editing
        term.wait(lambda s: "EDITING" in s)
        term.keys("C-Home")
        term.keys("# typed in the TUI", literal=True)
        term.keys("Enter")
        theirs = profile.read_text() + "# written by someone else\n"
        profile.write_text(theirs)
        term.keys("C-s")
        term.wait(lambda s: "changed on disk since you opened it" in s)
        assert profile.read_text() == theirs  # not overwritten
        term.keys("m")  # merge both; reviewed in the editor, then saved
        term.wait(lambda s: "changed on disk" not in s and "[modified]" in s
                  and "# typed in the TUI" in s)
        assert profile.read_text() == theirs
        term.keys("C-s")
        term.wait(lambda s: "[saved]" in s)
        text = profile.read_text()
        assert text.startswith("# typed in the TUI\n") and text.endswith(
            "# written by someone else\n")
        assert text.splitlines()[1:] == theirs.splitlines()
        term.keys("Escape")
        assert term.quit_with_q() == "0"
    finally:
        term.close()


FORMS_PORT = 7005


def test_forms_add_a_policy_with_a_new_set_apply_keep_and_count(lab, tmp_path):
    """Entirely through Forms: a network set (the lab client's address), a tracked
    policy whose rule allows that set to FORMS_PORT; saved, applied with a countdown,
    kept; the new rule's counter rises with the connections then made."""
    profile = tmp_path / "redis-host.toml"
    shutil.copy(lab.profile, profile)
    shutil.copy(lab.work / "blocklist.txt", tmp_path / "blocklist.txt")
    term = start_tui(lab, tmp_path, profile)
    try:
        term.wait(lambda s: "redis-untracked" in s)
        term.keys("4")
        term.wait(lambda s: "[saved]" in s and "valid" in s)
        term.keys("C-t")  # to Forms (the tree)
        term.wait(lambda s: "Network sets" in s)
        term.keys("Down", repeat=3)  # Host endpoints, uplink, Network sets, blocklist
        term.wait(lambda s: re.search(r"name\s+blocklist", s) is not None)
        term.keys("a")  # a new network set, selected
        term.wait(lambda s: re.search(r"name\s+new-network-set", s) is not None)
        term.keys("Tab", "Tab")  # name, labels
        term.keys("role=lab", literal=True)
        term.keys("Tab")  # nets
        term.keys("10.0.0.2/32", literal=True)
        term.keys("Enter")
        term.wait(lambda s: "[modified]" in s)
        term.keys("Escape")  # back to the tree
        term.wait(lambda s: re.search(r"name\s+new-network-set", s) is not None)
        term.keys("Down")  # on to "Policies"
        term.wait(lambda s: "a: add one" in s)
        term.keys("a")  # a new (tracked) policy
        term.wait(lambda s: "new-policy (tracked)" in s)
        term.keys("i")  # an ingress rule in it
        term.wait(lambda s: "ingress[0] allow" in s and "protocol" in s)
        term.keys("Tab", "Tab")  # action, protocol
        term.keys("tcp", literal=True)
        term.keys("Tab", repeat=3)  # source.nets, source.not_nets, source.selector
        term.keys("role == 'lab'", literal=True)
        term.keys("Tab", repeat=5)  # ... destination.ports
        term.keys(str(FORMS_PORT), literal=True)
        term.keys("Enter")  # written into the TOML (keys are handled in order)
        term.keys("C-s")
        term.wait(lambda s: "[saved]" in s and "valid" in s)
        text = profile.read_text()
        assert 'nets = ["10.0.0.2/32"]' in text and "role == 'lab'" in text
        assert f"ports = [{FORMS_PORT}]" in text

        term.keys("Escape")  # out of the field (alone: ESC then 5 would read as alt+5)
        term.keys("5")  # the plan shows at once
        term.wait(lambda s: re.search(r"rules \+[1-9]", s) is not None, limit=60)
        term.keys("a")
        term.wait(lambda s: "Apply these profiles?" in s)
        term.keys("y")
        term.wait(lambda s: "K keep / R revert" in s, limit=60)
        term.keys("K")
        term.wait(lambda s: "Keep generation" in s)
        term.keys("y")
        term.wait(lambda s: "kept" in s)
        report = lab.status()
        assert report["pending_confirm"] is None
        mine = [r for r in report["rules"] if r["policy"] == "new-policy"]
        assert mine and all(str(FORMS_PORT) in r["summary"] for r in mine), mine
        before = sum(r["packets"] for r in mine)
        assert connect_many(lab, FORMS_PORT, 10) == 10
        after = sum(r["packets"] for r in lab.status()["rules"] if r["policy"] == "new-policy")
        assert after - before >= 10  # at least every connection's first packet
        assert term.quit_with_q() == "0"
    finally:
        term.close()
