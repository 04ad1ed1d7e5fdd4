"""Profiles: host endpoints, network sets and untracked policies as forms, and the
raw TOML in an editor; live validation through the engine (the CLI's messages);
saving writes the tomlkit text atomically (comments and formatting kept)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from nodewall.engine.errors import ConcurrentEdit
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static, TabbedContent, TabPane, TextArea, Tree
from tomlkit.exceptions import ParseError

from ..files import Buffer, validate_text
from ..guard import mutating
from ..merge import diff_lines
from ..messages import Validated
from ..tomldoc import FIELDS, NEW_ITEMS, FormError, Node, ProfileDoc
from ..widgets.editor import TomlEditor
from ..widgets.profile_tree import fill_profile_tree, tree_width_for
from .base import NwScreen
from .dialogs import ConflictDialog

VALIDATE_DELAY = 0.6  # seconds of quiet typing before a live validation


class ProfilesScreen(NwScreen):
    MODE = "profiles"
    HELP = ("Forms: pick a host endpoint, network set, policy or rule in the tree;\n"
            "edit fields, enter writes them into the TOML (only those lines change).\n"
            "a adds a host endpoint / network set / policy (as the one selected),\n"
            "i / e add an ingress / egress rule to the selected policy, x deletes\n"
            "the selected item or rule.  ctrl+t switches Forms <-> TOML.\n"
            "TOML: enter starts editing, escape stops (while not editing, keys such\n"
            "as 1-5 and ? are never typed into the file); validated as you type with\n"
            "the CLI's messages.  f8 validates now and jumps to the first error,\n"
            "ctrl+s saves (never over a change made on disk meanwhile: you choose),\n"
            "ctrl+r reloads from disk, f2 next file.  escape leaves a form field.")
    BINDINGS: ClassVar[list] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "toggle_tab", "Forms/TOML", priority=True),
        Binding("f8", "goto_error", "Check"),
        Binding("f2", "next_file", "Next file"),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("i", "add_rule('ingress')", "+ingress", show=False),
        Binding("e", "add_rule('egress')", "+egress", show=False),
        Binding("x", "delete_item", "Delete", show=False),
        Binding("a", "add_item", "Add", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.current: Buffer | None = None
        self.node: Node | None = None
        self._timer = None
        self._loading = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="prof-file", markup=False)
        with TabbedContent(initial="tab-toml", id="prof-tabs"):
            with TabPane("Forms", id="tab-forms"), Horizontal():
                yield Tree("profile", id="prof-tree")
                yield VerticalScroll(id="prof-form")
            with TabPane("TOML", id="tab-toml"):
                yield TomlEditor.code_editor("", id="prof-editor", soft_wrap=False)
        yield Static("", id="prof-check", markup=False)

    def on_mount(self) -> None:
        editor = self.query_one("#prof-editor", TextArea)
        if "toml" in editor.available_languages:
            editor.language = "toml"
        editor.set_may_edit(not self.app.guard.readonly)
        self.query_one("#prof-tree", Tree).show_root = False
        self.query_one("#prof-form").can_focus = False  # tab: tree -> first field
        if self.app.buffers:
            self.select_buffer(next(iter(self.app.buffers.values())))
        else:
            self.query_one("#prof-file", Static).update(
                "no profiles given: start with `nodewall tui PROFILE.toml`")

    def readonly_changed(self) -> None:
        self.query_one("#prof-editor", TomlEditor).set_may_edit(not self.app.guard.readonly)
        for box in self.query("#prof-form Input").results(Input):
            box.disabled = self.app.guard.readonly

    # -- buffers ---------------------------------------------------------------------
    def select_buffer(self, buf: Buffer) -> None:
        self.current = buf
        editor = self.query_one("#prof-editor", TextArea)
        self._loading = True
        editor.load_text(buf.text)
        self._loading = False
        self.node = None
        self._header()
        self._rebuild_tree()
        self._show_problems()
        if buf.checked != buf.edits:
            self._schedule_validation(0)

    def open_at(self, path: Path, line: int, col: int) -> None:
        buf = self.app.buffer_for(path)
        if buf is not self.current:
            self.select_buffer(buf)
        self.query_one("#prof-tabs", TabbedContent).active = "tab-toml"
        editor = self.query_one("#prof-editor", TextArea)
        editor.move_cursor((max(0, line - 1), max(0, col - 1)), center=True)
        editor.focus()

    def _header(self) -> None:
        buf = self.current
        if buf is None:
            return
        n = len(self.app.buffers)
        more = f"  (f2: next of {n})" if n > 1 else ""
        state = "modified" if buf.dirty else "saved"
        editor = self.query_one("#prof-editor", TomlEditor)
        mode = "  EDITING (escape stops)" if editor.editing else ""
        # the path last: a long one is what gets cut at 80 columns
        self.query_one("#prof-file", Static).update(f"[{state}]{mode}{more}  {buf.path}")

    def on_toml_editor_mode_changed(self, event: TomlEditor.ModeChanged) -> None:
        self._header()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("add_rule", "add_item", "delete_item") and \
                self.query_one("#prof-tabs", TabbedContent).active != "tab-forms":
            return False  # TOML tab: these keys do nothing (and are not typed)
        return super().check_action(action, parameters)

    def action_toggle_tab(self) -> None:
        tabs = self.query_one("#prof-tabs", TabbedContent)
        to_forms = tabs.active != "tab-forms"
        self.query_one("#prof-editor", TomlEditor).set_editing(False)
        tabs.active = "tab-forms" if to_forms else "tab-toml"
        self.query_one("#prof-tree" if to_forms else "#prof-editor").focus()
        self.refresh_bindings()

    # -- the editor --------------------------------------------------------------------
    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self._loading or self.current is None:
            return
        self.current.set_text(event.text_area.text)
        self._header()
        self._schedule_validation(VALIDATE_DELAY)

    def set_editor_text(self, text: str) -> None:
        """Replace the whole text as one undoable edit."""
        editor = self.query_one("#prof-editor", TextArea)
        editor.replace(text, (0, 0), editor.document.end)
        if self.current is not None:
            self.current.set_text(text)
        self._header()
        self._schedule_validation(0)

    # -- validation --------------------------------------------------------------------
    def _schedule_validation(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(max(delay, 0.01), self._start_validation)

    def _start_validation(self, jump: bool = False) -> None:
        buf = self.current
        if buf is None or not self.app.client_ready:
            return
        others = [b.path for b in self.app.buffers.values() if b is not buf]
        self._validate(buf.path, buf.text, buf.edits, others, jump)

    @work(thread=True, group="validate", exit_on_error=False)
    def _validate(self, path: Path, text: str, edits: int, others: list, jump: bool) -> None:
        try:
            problems, warnings = validate_text(self.app.client.validate, path, text, others)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            problems, warnings = [_plain_problem(exc)], []
        self.post_message(Validated(str(path), edits, problems, warnings, jump))

    def on_validated(self, msg: Validated) -> None:
        buf = self.app.buffers.get(Path(msg.path))
        if buf is None or msg.generation != buf.edits:
            return  # the text changed since; a newer validation is on its way
        buf.problems, buf.warnings, buf.checked = tuple(msg.problems), tuple(msg.warnings), \
            msg.generation
        if buf is self.current:
            self._show_problems()
            if msg.jump:
                self._jump_to_problem()

    def _show_problems(self) -> None:
        buf, box = self.current, self.query_one("#prof-check", Static)
        if buf is None:
            return
        if buf.checked != buf.edits:
            box.update("checking...")
            box.set_class(False, "alert")
        elif buf.problems:
            more = f" (+{len(buf.problems) - 1} more)" if len(buf.problems) > 1 else ""
            box.update(f"{buf.problems[0].text}{more}  [f8: go there]")
            box.set_class(True, "alert")
        else:
            warn = f"; {len(buf.warnings)} warning(s): {buf.warnings[0]}" if buf.warnings else ""
            box.update(f"valid{warn}")
            box.set_class(False, "alert")

    def _jump_to_problem(self) -> None:
        buf = self.current
        located = [p for p in (buf.problems if buf else ()) if p.line]
        if not located:
            return
        self.query_one("#prof-tabs", TabbedContent).active = "tab-toml"
        editor = self.query_one("#prof-editor", TextArea)
        editor.move_cursor((located[0].line - 1, max(0, (located[0].col or 1) - 1)),
                           center=True)
        editor.focus()

    def action_goto_error(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._start_validation(jump=True)

    # -- files ---------------------------------------------------------------------------
    @mutating
    def action_save(self) -> None:
        buf = self.current
        if buf is None:
            return
        try:
            buf.save()
        except OSError as exc:
            self.app.notify(f"cannot save {buf.path}: {exc.strerror}", severity="error")
            return
        except ConcurrentEdit:
            self._resolve_conflict(buf)
            return
        self._saved(buf)

    def _saved(self, buf: Buffer) -> None:
        self._header()
        if buf.problems:
            self.app.notify(f"saved {buf.path.name} with {len(buf.problems)} error(s)",
                            severity="warning")
            self._jump_to_problem()
        else:
            self.app.notify(f"saved {buf.path.name}")

    def _resolve_conflict(self, buf: Buffer) -> None:
        disk = buf.disk_text()
        self.app.push_screen(ConflictDialog(buf.path.name, diff_lines(disk, buf.text,
                                                                      buf.path.name)),
                             lambda choice: self._conflict_chosen(buf, disk, choice))

    def _conflict_chosen(self, buf: Buffer, disk: str, choice: str | None) -> None:
        if choice == "reload":
            self.action_reload()
            self.app.notify(f"reloaded {buf.path.name} from disk")
        elif choice == "overwrite":
            try:
                buf.overwrite(disk)
            except ConcurrentEdit:  # changed yet again while the dialog was open
                self._resolve_conflict(buf)
                return
            except OSError as exc:
                self.app.notify(f"cannot save {buf.path}: {exc.strerror}", severity="error")
                return
            self._saved(buf)
        elif choice == "merge":
            conflicts = buf.merge_disk(disk)
            self.select_buffer(buf)
            note = (f"{conflicts} conflict(s) marked <<<<<<< in the TOML" if conflicts
                    else "no conflicts")
            self.app.notify(f"merged the change on disk: {note}; review, then ctrl+s",
                            severity="warning" if conflicts else "information", timeout=10)

    def action_reload(self) -> None:
        if self.current is not None:
            fresh = Buffer.load(self.current.path)
            self.app.buffers[self.current.path] = fresh
            self.select_buffer(fresh)

    def action_next_file(self) -> None:
        bufs = list(self.app.buffers.values())
        if self.current in bufs and len(bufs) > 1:
            self.select_buffer(bufs[(bufs.index(self.current) + 1) % len(bufs)])

    def action_leave_field(self) -> None:
        """escape in a form field: back to the tree (the TOML editor's own escape
        moves the focus on by itself)."""
        focused = self.focused
        if isinstance(focused, Input) and focused.id and focused.id.startswith("field-"):
            self.query_one("#prof-tree", Tree).focus()

    # -- forms -----------------------------------------------------------------------------
    def _doc(self) -> ProfileDoc | None:
        try:
            return ProfileDoc(self.current.text) if self.current else None
        except ParseError as exc:
            self.app.notify(f"fix the TOML syntax first: {exc}", severity="error")
            return None

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-forms":
            self._rebuild_tree()
        self.refresh_bindings()

    def _rebuild_tree(self, select: tuple | None = None) -> None:
        tree = self.query_one("#prof-tree", Tree)
        tree.clear()
        try:
            nodes = ProfileDoc(self.current.text).nodes() if self.current else []
        except ParseError:
            tree.root.add_leaf("(TOML has a syntax error: see the TOML tab)")
            return
        target = fill_profile_tree(tree, nodes, self._tree_width(tree), select)
        if target is not None:  # the tree lays out its lines on a later refresh
            self.call_after_refresh(self._move_to, tree, target, 20)

    def _tree_width(self, tree: Tree) -> int:
        """Columns a label line may use: the tree's, less a vertical scrollbar."""
        width = tree.size.width or tree_width_for(self.app.size.width)
        return width - tree.styles.scrollbar_size_vertical

    def on_resize(self, event) -> None:
        if self.query_one("#prof-tabs", TabbedContent).active == "tab-forms":
            self._rebuild_tree(self.node.path if self.node is not None else None)

    def _move_to(self, tree: Tree, target, tries: int) -> None:
        if target.line < 0 and tries > 0:  # not laid out yet (a busy terminal)
            self.set_timer(0.05, lambda: self._move_to(tree, target, tries - 1))
            return
        tree.move_cursor(target)

    async def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        node = event.node.data
        if node is self.node:
            return
        self.node = node
        form = self.query_one("#prof-form", VerticalScroll)
        await form.remove_children()
        if node is None:
            return
        if node.kind == "group":
            await form.mount(Label(f"{node.label}\na: add one", markup=False))
            return
        doc = self._doc()
        if doc is None:
            return
        await form.mount(Label(node.label, classes="field-title", markup=False))
        values = doc.form_values(node.kind, node.path)
        rows = [Horizontal(Label(key, classes="field-label", markup=False),
                           Input(values[key], id=f"field-{i}", name=key, compact=True,
                                 select_on_focus=False,
                                 disabled=self.app.guard.readonly),
                           classes="field-row")
                for i, (key, _) in enumerate(FIELDS[node.kind])]
        hint = "enter: write to TOML  x: delete" + (
            "\ni / e: add an ingress / egress rule" if node.kind == "policy" else "")
        await form.mount(*rows, Label(hint, classes="field-hint", markup=False))

    def form_values(self) -> dict[str, str]:
        return {w.name: w.value for w in self.query("#prof-form Input").results(Input)}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id and event.input.id.startswith("field-"):
            self.action_edit_profile()

    @mutating
    def action_edit_profile(self) -> None:
        node, doc = self.node, self._doc()
        if node is None or doc is None or node.kind not in FIELDS:
            return
        try:
            changed = doc.apply_form(node.kind, node.path, self.form_values())
        except FormError as exc:
            self.app.notify(str(exc), severity="error")
            return
        if changed:
            self.set_editor_text(doc.text())
            self._rebuild_tree(select=node.path)

    @mutating
    def action_add_rule(self, direction: str) -> None:
        node, doc = self.node, self._doc()
        if node is None or doc is None or node.kind not in ("policy", "rule"):
            self.app.notify("select a policy or one of its rules first")
            return
        path = doc.add_rule(node.path[1], direction)
        self.set_editor_text(doc.text())
        self.node = None
        self._rebuild_tree(select=path)

    @mutating
    def action_add_item(self) -> None:
        node, doc = self.node, self._doc()
        if node is None or doc is None:
            return
        kind = node.path[0] if node.kind == "group" else node.kind
        kind = "policy" if kind == "rule" else kind
        if kind not in NEW_ITEMS:
            return
        path = doc.add_item(kind)
        self.set_editor_text(doc.text())
        self.node = None
        self._rebuild_tree(select=path)

    @mutating
    def action_delete_item(self) -> None:
        node, doc = self.node, self._doc()
        if node is None or doc is None or node.kind not in ("rule", *NEW_ITEMS):
            self.app.notify("select a rule, host endpoint, network set or policy first")
            return
        if node.kind == "rule":
            doc.delete_rule(node.path)
            select = node.path[:2]
        else:
            doc.delete_item(node.path)
            select = (node.path[0], max(0, node.path[1] - 1))
        self.set_editor_text(doc.text())
        self.node = None
        self._rebuild_tree(select=select)


def _plain_problem(exc: Exception):
    from ..files import Problem
    render = getattr(exc, "render", None)
    return Problem(render() if render else f"{type(exc).__name__}: {exc}", None, None)
