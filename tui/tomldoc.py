"""Edit a profile's TOML document at the leaves with tomlkit, so comments and
formatting survive form edits.  Never re-serialized from the engine's dataclasses.

Forms deal in strings; this module converts between form strings and TOML values
and applies the smallest change: an unchanged field is not touched, a replaced
value keeps the trailing comment of the value it replaces, a list that only grew
is appended to."""
from __future__ import annotations

import re
from dataclasses import dataclass

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Item, Table

ACTIONS = ("allow", "deny", "log", "pass")

# (field key, kind) - a key with a dot lives in a sub-table (source / destination)
HEP_FIELDS = (("name", "str"), ("interface", "str"), ("expected_ips", "list"),
              ("labels", "labels"))
NETSET_FIELDS = (("name", "str"), ("labels", "labels"), ("nets", "list"),
                 ("nets_file", "str"))
RULE_FIELDS = (("action", "str"), ("protocol", "str"),
               ("source.nets", "list"), ("source.not_nets", "list"),
               ("source.selector", "str"), ("source.ports", "ports"),
               ("destination.nets", "list"), ("destination.not_nets", "list"),
               ("destination.selector", "str"), ("destination.ports", "ports"))
POLICY_FIELDS = (("name", "str"), ("order", "number"), ("selector", "str"),
                 ("types", "list"))
FIELDS = {"host_endpoint": HEP_FIELDS, "network_set": NETSET_FIELDS, "rule": RULE_FIELDS,
          "policy": POLICY_FIELDS}
# kind -> (the array of tables it lives in, the table a new one starts as)
NEW_ITEMS = {
    "host_endpoint": ("host_endpoints", 'name = "{name}"\ninterface = ""\n'),
    "network_set": ("network_sets", 'name = "{name}"\nnets = []\n'),
    "policy": ("policies", 'name = "{name}"\nselector = "all()"\n'),
}
KIND_OF_TABLE = {table: kind for kind, (table, _) in NEW_ITEMS.items()}
HEADER = re.compile(r"^\s*\[\[?\s*([^\]\s]+)\s*\]\]?")


class FormError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Node:
    kind: str  # host_endpoint | network_set | policy | rule
    path: tuple  # ("host_endpoints", i) / ("policies", i, "ingress", j) ...
    label: str


def _plain(value):
    return value.unwrap() if isinstance(value, Item) else value


# -- form string <-> value --------------------------------------------------
def to_form(value, kind: str) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if kind == "labels":
        return ", ".join(f"{k}={v}" for k, v in dict(value).items())
    if kind in ("list", "ports"):
        return ", ".join(str(v) for v in value)
    return str(value)


def from_form(text: str, kind: str, field: str):
    """None means 'remove the key'."""
    text = text.strip()
    if not text:
        return None
    if kind == "str":
        return text
    tokens = [t for t in text.replace(",", " ").split() if t]
    if kind == "list":
        return tokens
    if kind == "ports":
        return [int(t) if t.isdigit() else t for t in tokens]
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise FormError(field, f"'{text}' is not a number") from None
        return int(number) if number.is_integer() else number
    if kind == "labels":
        labels = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                raise FormError(field, f"label '{part}' is not key=value")
            labels[key.strip()] = val.strip()
        return labels
    raise ValueError(f"unknown field kind {kind}")


# -- leaf edits ---------------------------------------------------------------
def _inline(value: dict) -> InlineTable:
    """An inline table written the way people write them: `{ a = 1, b = [2] }`."""
    body = ", ".join(f"{tomlkit.key(k).as_string()} = {tomlkit.item(v).as_string()}"
                     for k, v in value.items())
    table = tomlkit.parse(f"x = {{ {body} }}" if body else "x = {}")["x"]
    table.trivia.trail = "\n"
    return table


def _new_item(value, like=None):
    if isinstance(value, dict):
        return _inline(value)
    item = tomlkit.item(value)
    if isinstance(like, Array) and isinstance(item, Array) and "\n" in like.as_string():
        item.multiline(True)
    return item


def set_leaf(container, key: str, value) -> bool:
    """Set container[key] = value touching as little as possible.  Returns True
    when something changed."""
    if value is None:
        if key in container:
            del container[key]
            return True
        return False
    if key not in container:
        container[key] = _new_item(value)
        return True
    old = container[key]
    if _plain(old) == value:
        return False
    if isinstance(old, Array) and isinstance(value, list):
        now = list(old.unwrap())
        if len(value) > len(now) and value[:len(now)] == now:
            for extra in value[len(now):]:
                old.append(extra)
            return True
    new = _new_item(value, like=old)
    trivia = getattr(old, "trivia", None)
    if trivia is not None and trivia.comment:
        new.trivia.comment_ws = trivia.comment_ws or " "
        new.trivia.comment = trivia.comment
    container[key] = new
    return True


class ProfileDoc:
    """One profile file's TOML document."""

    def __init__(self, text: str):
        self.doc = tomlkit.parse(text)  # raises tomlkit.exceptions.ParseError

    def text(self) -> str:
        return self.doc.as_string()

    # -- listing -------------------------------------------------------------
    def nodes(self) -> list[Node]:
        out: list[Node] = []
        for i, hep in enumerate(self.doc.get("host_endpoints", [])):
            label = f"{hep.get('name', '?')} ({hep.get('interface', '?')})"
            out.append(Node("host_endpoint", ("host_endpoints", i), label))
        for i, ns in enumerate(self.doc.get("network_sets", [])):
            out.append(Node("network_set", ("network_sets", i), str(ns.get("name", "?"))))
        for i, pol in enumerate(self.doc.get("policies", [])):
            tier = "untracked" if pol.get("do_not_track", False) else "tracked"
            out.append(Node("policy", ("policies", i), f"{pol.get('name', '?')} ({tier})"))
            for direction in ("ingress", "egress"):
                for j, rule in enumerate(pol.get(direction, [])):
                    out.append(Node("rule", ("policies", i, direction, j),
                                    f"{direction}[{j}] {rule_summary(rule)}"))
        return out

    def get(self, path: tuple):
        node = self.doc
        for step in path:
            node = node[step]
        return node

    # -- forms ----------------------------------------------------------------
    def form_values(self, kind: str, path: tuple) -> dict[str, str]:
        item = self.get(path)
        values = {}
        for key, fkind in FIELDS[kind]:
            container = item
            *parents, leaf = key.split(".")
            for parent in parents:
                container = container.get(parent) if container is not None else None
            values[key] = to_form(container.get(leaf) if container is not None else None,
                                  fkind)
        return values

    def apply_form(self, kind: str, path: tuple, values: dict[str, str]) -> bool:
        item = self.get(path)
        changed = False
        subs: dict[str, dict[str, object]] = {}  # source/destination: leaf -> value
        for key, fkind in FIELDS[kind]:
            if key not in values:
                continue
            value = from_form(values[key], fkind, key)
            if key == "action" and value not in ACTIONS:
                raise FormError(key, f"must be one of {', '.join(ACTIONS)}")
            parent, _, leaf = key.rpartition(".")
            if parent:
                subs.setdefault(parent, {})[leaf] = value
            else:
                changed |= set_leaf(item, leaf, value)
        for parent, leaves in subs.items():
            changed |= self._apply_sub(item, parent, leaves)
        return changed

    @staticmethod
    def _apply_sub(item, parent: str, leaves: dict[str, object]) -> bool:
        sub = item.get(parent)
        if isinstance(sub, Table):  # a [policies.ingress.source] section: edit in place
            changed = False
            for leaf, value in leaves.items():
                changed |= set_leaf(sub, leaf, value)
            return changed
        merged = dict(_plain(sub) or {})
        for leaf, value in leaves.items():
            if value is None:
                merged.pop(leaf, None)
            else:
                merged[leaf] = value
        return set_leaf(item, parent, merged or None)

    def add_rule(self, policy_index: int, direction: str, action: str = "allow") -> tuple:
        pol = self.doc["policies"][policy_index]
        rule = tomlkit.table()
        rule["action"] = action
        rule.add(tomlkit.nl())
        siblings = [r for d in ("ingress", "egress") for r in pol.get(d, [])]
        if siblings:
            rule.indent(len(siblings[0].trivia.indent))
        if direction not in pol:
            pol[direction] = AoT([])
        pol[direction].append(rule)
        # re-read so that later edits insert keys before the table's blank line
        self.doc = tomlkit.parse(self.doc.as_string())
        return ("policies", policy_index, direction, len(pol[direction]) - 1)

    def add_item(self, kind: str) -> tuple:
        """A new host endpoint / network set / policy after the last one (its own
        lines, blank lines around it, nothing else moved); returns its path."""
        table, body = NEW_ITEMS[kind]
        taken = {str(t.get("name")) for t in self.doc.get(table, [])}
        base = kind.replace("_", "-")
        name = next(n for n in (f"new-{base}", *(f"new-{base}-{k}" for k in range(2, 999)))
                    if n not in taken)
        text = insert_table(self.text(), table, body.format(name=name))
        self.doc = tomlkit.parse(text)
        return (table, len(self.doc[table]) - 1)

    def delete_item(self, path: tuple) -> None:
        table, i = path
        before = self.text()
        heads = [h for h in map(_header, before.splitlines()) if h is not None]
        last = i == len(self.doc[table]) - 1 and bool(heads) and (
            heads[-1] == table or heads[-1].startswith(table + "."))
        del self.doc[table][i]
        if len(self.doc[table]) == 0:
            del self.doc[table]
        text = self.doc.as_string()
        if last:  # the file's last table went: no blank line left over at the end
            text = text.rstrip("\n") + "\n"
        self.doc = tomlkit.parse(text)

    def delete_rule(self, path: tuple) -> None:
        _, i, direction, j = path
        pol = self.doc["policies"][i]
        del pol[direction][j]
        if len(pol[direction]) == 0:
            del pol[direction]


def _header(line: str) -> str | None:
    m = HEADER.match(line)
    return m.group(1) if m and not line.lstrip().startswith("#") else None


def insert_table(text: str, table: str, body: str) -> str:
    """`text` with `[[table]]` + body added after the last `[[table]]` element (and
    its sub-tables), or at the end; one blank line before and after it."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"

    def ours(name: str | None) -> bool:
        return name is not None and (name == table or name.startswith(table + "."))
    heads = [(i, _header(line)) for i, line in enumerate(lines)]
    mine = [i for i, name in heads if ours(name)]
    at = len(lines)
    if mine:
        later = [i for i, name in heads if i > mine[-1] and name is not None and not ours(name)]
        at = later[0] if later else len(lines)
    while at > 0 and not lines[at - 1].strip():
        at -= 1
    block = ["\n", f"[[{table}]]\n", *body.splitlines(keepends=True)]
    rest = lines[at:]
    if any(line.strip() for line in rest):
        block.append("\n")
        while rest and not rest[0].strip():
            rest = rest[1:]
    return "".join(lines[:at] + block + rest)


def rule_summary(rule) -> str:
    parts = [str(rule.get("action", "?"))]
    if rule.get("protocol"):
        parts.append(str(rule["protocol"]))
    for side in ("source", "destination"):
        ent = rule.get(side)
        if not ent:
            continue
        bits = []
        if ent.get("nets"):
            bits.append(",".join(str(n) for n in ent["nets"]))
        if ent.get("selector"):
            bits.append(str(ent["selector"]))
        if ent.get("ports"):
            bits.append(":" + ",".join(str(p) for p in ent["ports"]))
        if bits:
            parts.append(("src " if side == "source" else "dst ") + " ".join(bits))
    return " ".join(parts)
