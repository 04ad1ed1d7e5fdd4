"""Profiles screen: forms edit the TOML at the leaves (comments kept), live
validation with the engine's messages, atomic save, read-only."""
from __future__ import annotations

import pytest
from nodewall.tui.screens.profiles import ProfilesScreen
from textual.widgets import Input, Label, TabbedContent, TextArea, Tree

from .conftest import screen_text, settle, tick

pytestmark = pytest.mark.asyncio


async def open_forms(pilot, clock):
    await tick(pilot, clock)
    await pilot.press("4")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ProfilesScreen)
    screen.query_one("#prof-tabs", TabbedContent).active = "tab-forms"
    await settle(pilot)
    return screen


async def pick(pilot, screen, label_start: str) -> None:
    tree = screen.query_one("#prof-tree", Tree)
    nodes = []

    def walk(node):
        for child in node.children:
            nodes.append(child)
            walk(child)
    walk(tree.root)
    target = next(n for n in nodes  # the whole label (the tree's may be cut)
                  if (n.data.label if n.data else str(n.label)).startswith(label_start))
    tree.focus()
    tree.move_cursor(target)
    await settle(pilot)


def field(screen, name: str) -> Input:
    return next(i for i in screen.query("#prof-form Input").results(Input) if i.name == name)


async def test_form_edit_updates_the_toml_and_save_keeps_comments(new_app, profile, clock):
    original = profile.read_text()
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        await pick(pilot, screen, "ingress[0] allow tcp src 10.0.0.0/8")
        ports = field(screen, "destination.ports")
        assert ports.value == "6379"
        ports.focus()
        ports.value = "6379, 6380"
        await pilot.press("enter")
        await settle(pilot)
        text = screen.query_one("#prof-editor", TextArea).text
        assert "  destination = { ports = [6379, 6380] }" in text.splitlines()
        changed = [(a, b) for a, b in zip(original.splitlines(), text.splitlines()) if a != b]
        assert len(changed) == 1  # only that leaf; every comment is still there
        assert profile.read_text() == original  # not saved yet
        assert "[modified]" in screen_text(app) and "valid" in screen_text(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert profile.read_text() == text
        assert "[saved]" in screen_text(app)


async def test_add_and_delete_rule_with_keys(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        await pick(pilot, screen, "redis-untracked")
        await pilot.press("e")  # add an egress rule to the policy
        await settle(pilot)
        text = screen.query_one("#prof-editor", TextArea).text
        assert text.count("[[policies.egress]]") == 2
        assert screen.node is not None and screen.node.path == ("policies", 1, "egress", 1)
        await pilot.press("x")
        await settle(pilot)
        text = screen.query_one("#prof-editor", TextArea).text
        assert text.count("[[policies.egress]]") == 1
        assert "# the return path: untracked flows are stateless" in text


async def test_validation_error_is_shown_and_f8_moves_the_cursor(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await tick(pilot, clock)
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        editor = screen.query_one("#prof-editor", TextArea)
        editor.focus()
        editor.move_cursor((28, 12))  # inside "deny" on line 29
        await pilot.press("enter")  # start editing
        await pilot.press("delete", "delete", "delete", "delete", *"dney")
        await pilot.pause(0.7)  # the live-validation debounce
        await settle(pilot)
        assert "redis-host.toml:29:13: unknown action 'dney'" in screen_text(app)
        editor.move_cursor((0, 0))
        await pilot.press("f8")
        await settle(pilot)
        assert editor.cursor_location == (28, 12)


async def test_readonly_disables_editing_and_saving(new_app, profile, fake, clock):
    app = new_app(readonly=True)
    original = profile.read_text()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        assert screen.query_one("#prof-editor", TextArea).read_only
        await pick(pilot, screen, "uplink")
        assert field(screen, "interface").disabled
        await pick(pilot, screen, "redis-untracked")
        await pilot.press("e", "ctrl+s")
        await settle(pilot)
        assert screen.query_one("#prof-editor", TextArea).text == original
        assert "READ-ONLY (--readonly)" in screen_text(app)
    assert profile.read_text() == original


async def _edit_then_disk_changes(pilot, screen, profile, clock):
    """Ports 6379 -> 6379, 6380 in the form (line 44); meanwhile someone appends a
    comment to the file on disk."""
    await pick(pilot, screen, "ingress[0] allow tcp src 10.0.0.0/8")
    ports = field(screen, "destination.ports")
    ports.focus()
    ports.value = "6379, 6380"
    await pilot.press("enter")
    await settle(pilot)
    disk = profile.read_text() + "# added on disk meanwhile\n"
    profile.write_text(disk)
    await pilot.press("ctrl+s")
    await settle(pilot)
    return disk


async def test_save_never_overwrites_a_change_made_on_disk(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        disk = await _edit_then_disk_changes(pilot, screen, profile, clock)
        text = screen_text(app)
        assert profile.read_text() == disk  # not written
        assert "changed on disk since you opened it" in text
        assert "+# added on disk meanwhile" not in text and "-# added on disk meanwhile" in text
        assert "+  destination = { ports = [6379, 6380] }" in text
        await pilot.press("escape")  # back to editing: still nothing written
        await settle(pilot)
        assert profile.read_text() == disk and "[modified]" in screen_text(app)
        await pilot.press("ctrl+s", "m")  # merge: both changes, nothing to resolve
        await settle(pilot)
        merged = screen.query_one("#prof-editor", TextArea).text
        assert "# added on disk meanwhile" in merged
        assert "  destination = { ports = [6379, 6380] }" in merged
        assert profile.read_text() == disk  # the merge is reviewed before it is saved
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert profile.read_text() == merged and "[saved]" in screen_text(app)


async def test_conflict_reload_and_overwrite(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        disk = await _edit_then_disk_changes(pilot, screen, profile, clock)
        await pilot.press("r")  # reload: the disk's version, the edit is dropped
        await settle(pilot)
        assert screen.query_one("#prof-editor", TextArea).text == disk
        assert profile.read_text() == disk and "[saved]" in screen_text(app)
        disk = await _edit_then_disk_changes(pilot, screen, profile, clock)
        await pilot.press("o")  # overwrite the version shown
        await settle(pilot)
        mine = screen.query_one("#prof-editor", TextArea).text
        assert profile.read_text() == mine and "# added on disk meanwhile\n# added" not in mine


async def test_merge_marks_a_conflicting_change(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        await pick(pilot, screen, "ingress[0] allow tcp src 10.0.0.0/8")
        ports = field(screen, "destination.ports")
        ports.focus()
        ports.value = "6379, 6380"
        await pilot.press("enter")
        await settle(pilot)
        disk = profile.read_text().replace("ports = [6379] }", "ports = [6379, 7000] }", 1)
        profile.write_text(disk)
        await pilot.press("ctrl+s", "m")
        await settle(pilot)
        text = screen.query_one("#prof-editor", TextArea).text
        assert "<<<<<<< yours\n  destination = { ports = [6379, 6380] }\n=======\n" \
               "  destination = { ports = [6379, 7000] }\n>>>>>>> on disk\n" in text
        assert profile.read_text() == disk


def _diff(before: str, after: str) -> list[str]:
    import difflib
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


async def test_forms_add_and_delete_sets_endpoints_and_policies(new_app, profile, clock):
    original = profile.read_text()
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        editor = screen.query_one("#prof-editor", TextArea)
        await pick(pilot, screen, "blocklist")
        await pilot.press("a")  # a network set like the one selected
        await settle(pilot)
        assert screen.node.path == ("network_sets", 1)
        assert _diff(original, editor.text) == ["+", "+[[network_sets]]",
                                               '+name = "new-network-set"', "+nets = []"]
        nets = field(screen, "nets")
        nets.focus()
        await pilot.press(*"198.51.100.0/24", "enter")
        await settle(pilot)
        assert 'nets = ["198.51.100.0/24"]' in editor.text
        await pick(pilot, screen, "Policies")
        await pilot.press("a")  # a (tracked) policy, then a rule in it
        await settle(pilot)
        assert screen.node.path == ("policies", 3)
        await pilot.press("i")
        await settle(pilot)
        assert screen.node.path == ("policies", 3, "ingress", 0)
        await pick(pilot, screen, "uplink")
        await pilot.press("a")
        await settle(pilot)
        text = editor.text
        assert 'name = "new-host-endpoint"' in text and 'name = "new-policy"' in text
        assert "[[policies.ingress]]" in text.split('name = "new-policy"')[1]
        # every line of the original is still there, in order, blank lines included
        assert all(line.startswith("+") for line in _diff(original, text))
        for label in ("new-host-endpoint", "new-network-set", "new-policy"):
            await pick(pilot, screen, label)
            await pilot.press("x")
            await settle(pilot)
        assert editor.text == original


async def test_tracked_policies_are_forms_too(new_app, profile, clock):
    original = profile.read_text()
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        await pick(pilot, screen, "ssh-and-icmp (tracked)")
        order = field(screen, "order")
        assert order.value == "100"
        order.focus()
        await pilot.press("backspace", "backspace", "backspace", *"50", "enter")
        await settle(pilot)
        text = screen.query_one("#prof-editor", TextArea).text
        assert _diff(original, text) == ["-order = 100", "+order = 50"]
        await pick(pilot, screen, "ingress[1] allow icmp")  # a tracked policy's rule
        assert field(screen, "protocol").value == "icmp"


async def test_focusing_a_field_does_not_select_its_text(new_app, profile, clock):
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        await pick(pilot, screen, "ingress[0] allow tcp src 10.0.0.0/8")
        await pilot.press("tab")  # from the tree into the first field (action)
        await settle(pilot)
        box = app.focused
        assert isinstance(box, Input) and box.name == "action"
        await pilot.press("end", *"x")
        assert box.value == "allowx"  # typed after the text, nothing replaced


LONG_POLICY = '''
[[policies]]
name = "allow-prometheus-scrape-from-monitoring"
selector = "all()"

  [[policies.ingress]]
  action = "allow"
  protocol = "tcp"
  source = { nets = ["10.200.0.0/16", "10.201.0.0/16"] }
  destination = { ports = [9100, 9256, "9300:9310"] }
'''


async def test_tree_labels_say_which_policy_and_rule_at_80_columns(new_app, profile, clock):
    """At 80x24 every tree line fits the tree, and still names its item: a policy by
    its name, a rule by its position and action, both ends of the rest kept; the
    whole label heads the form."""
    profile.write_text(profile.read_text() + LONG_POLICY)
    app = new_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_forms(pilot, clock)
        tree = screen.query_one("#prof-tree", Tree)
        await pilot.press("tab")  # the tree has the focus; its lines laid out
        await settle(pilot)
        width = tree.size.width - tree.styles.scrollbar_size_vertical
        lines = [(tree.get_node_at_line(y), None) for y in range(tree.last_line + 1)]
        assert width >= 34
        for node, _ in lines:
            if node.data is None or node.data.kind == "group":
                continue
            shown, full = str(node.label), node.data.label
            # the label leaves room for its guides (a rule 8 columns deep)
            assert len(shown) + {"rule": 8, "policy": 6}.get(node.data.kind, 4) <= width, shown
            if node.data.kind == "rule":
                position = full.split(" ", 1)[0].replace("ingress[", "in[").replace(
                    "egress[", "eg[")
                action = full.split(" ")[1]
                assert shown.startswith(f"{position} {action}"), (shown, full)
                assert shown[-4:] == full[-4:]  # the ports end stays
            elif len(full) + 6 <= width:
                assert shown == full
        names = {str(n.label) for n, _ in lines if n.data and n.data.kind == "policy"}
        assert {"drop-blocklist (untracked)", "redis-untracked (untracked)",
                "ssh-and-icmp (tracked)"} <= names
        long_pol = next(n for n, _ in lines if n.data and n.data.kind == "policy"
                        and n.data.label.startswith("allow-prometheus"))
        assert str(long_pol.label).startswith("allow-prom") and \
            str(long_pol.label).endswith("(tracked)")
        await pick(pilot, screen, "ingress[0] allow tcp src 10.200.0.0/16")
        title = screen.query_one("#prof-form .field-title", Label)
        assert str(title.render()) == ("ingress[0] allow tcp src 10.200.0.0/16,10.201.0.0/16 "
                                       "dst :9100,9256,9300:9310")  # all of it heads the form
        assert "10.201.0.0/16" in screen_text(app)  # on screen, wrapped
