"""Profile files (TOML) -> model.Profile, with file:line:col errors.

    load_profiles(["a.toml", "b.toml"]) -> Profile      or raise InputErrors

Every file is parsed with the standard library's tomllib (several times faster than
tomlkit, which a one-shot `nodewall apply` would otherwise import and run); a file
tomllib refuses is parsed again with tomlkit, whose error says where and what as the
messages always have.  A syntax error ends that file (one error), all
other errors are collected across files and items (an item with an error is left
out, so later checks do not pile up follow-on errors).  Names are unique across all
files per kind; policies are sorted by (order, name).  Semantic checks (DESIGN §3)
run on the valid items; see engine.profile.checks.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodewall.engine.errors import InputError, InputErrors, Loc
from nodewall.engine.nets.scan import scan_nets_file
from nodewall.engine.profile.checks import check_network_set_sizes, check_untracked
from nodewall.engine.profile.fields import Ctx, type_name
from nodewall.engine.profile.model import HostEndpoint, NetworkSet, Policy, Profile, Settings
from nodewall.engine.profile.objects import (
    NetworkSetDraft,
    default_settings,
    parse_host_endpoint,
    parse_network_set,
    parse_settings,
)
from nodewall.engine.profile.policies import parse_policy
from nodewall.engine.profile.toml_locations import scan_locations
from nodewall.engine.system.files import (
    FileTooBig,
    NotRegularFile,
    describe_open_error,
    read_regular,
)

if TYPE_CHECKING:
    from nodewall.engine.nets.baseline import BaselineStore

TOP_KEYS = ("settings", "host_endpoints", "network_sets", "policies")
MAX_PROFILE_BYTES = 4 << 20  # a profile is hand-written; big data belongs in a nets_file
BOM = "\ufeff"
_OPEN_HINTS = {FileTooBig: f"profiles are at most {MAX_PROFILE_BYTES >> 20} MiB; "
                           "put long address lists in a nets_file",
               NotRegularFile: "a profile must be a regular file (symlinks to one are fine)"}
_TK_SUFFIX = re.compile(r"\s*at line \d+ col \d+\s*$")


def read_profile_text(path: Path) -> str:
    """A profile's text: a regular file of at most MAX_PROFILE_BYTES, UTF-8, a leading
    byte order mark dropped.  Raises OSError (see describe_open_error) or
    UnicodeDecodeError."""
    text = read_regular(path, MAX_PROFILE_BYTES).decode("utf-8")
    return text[1:] if text.startswith(BOM) else text


def _read(path: str, errors: list[InputError], text: str | None = None) -> Ctx | None:
    """Parse the profile at `path` (or `text`, the content it is about to have: the
    TUI's editor validates unsaved text in memory)."""
    if text is not None:
        return _parse(path, text.removeprefix(BOM), errors)
    try:
        text = read_profile_text(Path(path))
    except OSError as e:
        errors.append(InputError(Loc(path, 1, 1), f"profile {describe_open_error(e)}",
                                 _OPEN_HINTS.get(type(e))))
        return None
    except UnicodeDecodeError as e:
        raw = e.object
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        errors.append(InputError(Loc(path, line, col), "profile is not valid UTF-8",
                                 "TOML files are UTF-8 text"))
        return None
    return _parse(path, text, errors)


def _parse(path: str, text: str, errors: list[InputError]) -> Ctx | None:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        data = _parse_with_tomlkit(path, text, errors)
    if data is None:
        return None
    return Ctx(path, text, scan_locations(text, path), errors, data)


def _parse_with_tomlkit(path: str, text: str, errors: list[InputError]) -> Any:
    """The document as tomlkit reads it, or None with its syntax error in `errors`."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    try:
        return tomlkit.parse(text).unwrap()
    except (TOMLKitError, ValueError, TypeError, KeyError, IndexError, RecursionError) as e:
        # ParseError carries line/col (col 0-based); KeyAlreadyPresent and a few
        # others carry nothing, so the scanner finds the place where it can.
        errors.append(_syntax_error(path, text, e))
        return None


def _syntax_error(path: str, text: str, e: Exception) -> InputError:
    message = _TK_SUFFIX.sub("", str(e))
    line, col = getattr(e, "line", None), getattr(e, "col", None)
    loc = Loc(path, max(line or 1, 1), max(col or 0, 0) + 1)
    if "already exists" in message:
        found = scan_locations(text, path).duplicate_at
        if found is not None:
            loc = Loc(path, *found)
    elif message.startswith("Control characters") and _at_line_end(text, loc):
        message = "unterminated string (a \"...\" or '...' string ends on its own line)"
    elif "\\x00" in message:  # tomlkit reads a NUL at the end of the input
        lines = text.split("\n")
        loc = Loc(path, len(lines), len(lines[-1]) + 1)
        message = "unexpected end of file"
    return InputError(loc, f"TOML syntax error: {message}", "see https://toml.io for the syntax")


def _at_line_end(text: str, loc: Loc) -> bool:
    lines = text.split("\n")
    return 0 < loc.line <= len(lines) and loc.col > len(lines[loc.line - 1].rstrip("\r"))


def _tables(ctx: Ctx, key: str) -> list[tuple[int, dict[str, Any]]]:
    data = ctx.data
    if key not in data:
        return []
    value = data[key]
    if not isinstance(value, list):
        ctx.error(ctx.locs.key(key), f"'{key}' must be an array of tables ([[{key}]]), "
                  f"not {type_name(value)}", f"write each entry under a [[{key}]] header")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            out.append((i, item))
        else:
            ctx.error(ctx.value_loc((key, i)),
                      f"each entry of '{key}' must be a table, not {type_name(item)}")
    return out


class _Names:
    """Uniqueness of names of one kind across all files."""

    def __init__(self, kind: str, errors: list[InputError]):
        self.kind, self.errors = kind, errors
        self.seen: dict[str, Loc] = {}

    def claim(self, name: str, loc: Loc) -> bool:
        first = self.seen.get(name)
        if first is not None:
            self.errors.append(InputError(loc, f"{self.kind} '{name}' already defined at "
                                          f"{first}", "names are unique across all files"))
            return False
        self.seen[name] = loc
        return True


def _settings(ctxs: list[Ctx], errors: list[InputError]) -> Settings:
    found: Settings | None = None
    for ctx in ctxs:
        data = ctx.data
        if "settings" not in data:
            continue
        raw = data["settings"]
        if not isinstance(raw, dict):
            ctx.error(ctx.locs.key("settings"),
                      f"'settings' must be a table ([settings]), not {type_name(raw)}")
            continue
        settings = parse_settings(ctx, raw)
        if found is not None:
            ctx.error(ctx.table_loc(("settings",)), f"[settings] already defined at "
                      f"{found.loc}", "keep one [settings] table across the applied files")
            continue
        found = settings
    return found or default_settings(ctxs[0].file if ctxs else "<none>")


def _network_set(draft: NetworkSetDraft, settings: Settings,
                 baselines: BaselineStore | None, errors: list[InputError]) -> NetworkSet | None:
    ctx, path = draft.ctx, draft.path
    nets_file = None
    if draft.nets_file is not None:
        loc = ctx.value_loc(path + ("nets_file",))
        try:
            nets_file = scan_nets_file(draft.nets_file, loc, settings.max_set_entries,
                                       baselines=baselines)
        except InputError as e:
            errors.append(e)
            return None
    return NetworkSet(draft.name, draft.labels, draft.nets, nets_file, ctx.table_loc(path))


def load_profiles(paths: Sequence[str | Path], *, baselines: BaselineStore | None = None,
                  texts: Mapping[str, str] | None = None) -> Profile:
    """Load and validate profile files together; raise InputErrors listing every error.
    `texts`: {path: content} for files whose unsaved content is to be checked instead
    of what is on disk (errors still name the path; nets_file paths resolve beside it)."""
    errors: list[InputError] = []
    files = tuple(str(p) for p in paths)
    if not files:
        raise InputErrors([InputError(Loc("<command line>", 1, 1), "no profile given")])
    texts = {str(k): v for k, v in (texts or {}).items()}
    ctxs = [c for c in (_read(f, errors, texts.get(f)) for f in files) if c is not None]
    for ctx in ctxs:
        data = ctx.data
        ctx.check_keys(data, (), TOP_KEYS, "the top level")
    settings = _settings(ctxs, errors)

    heps: list[HostEndpoint] = []
    hep_names = _Names("host endpoint", errors)
    drafts: list[NetworkSetDraft] = []
    set_names = _Names("network set", errors)
    policies: list[Policy] = []
    policy_names = _Names("policy", errors)
    policy_paths: dict[str, tuple[Ctx, tuple[str | int, ...]]] = {}
    for ctx in ctxs:
        for i, t in _tables(ctx, "host_endpoints"):
            hep = parse_host_endpoint(ctx, t, ("host_endpoints", i))
            if hep and hep_names.claim(hep.name, ctx.value_loc(("host_endpoints", i, "name"))):
                heps.append(hep)
        for i, t in _tables(ctx, "network_sets"):
            draft = parse_network_set(ctx, t, ("network_sets", i))
            if draft and set_names.claim(draft.name,
                                         ctx.value_loc(("network_sets", i, "name"))):
                drafts.append(draft)
        for i, t in _tables(ctx, "policies"):
            policy = parse_policy(ctx, t, ("policies", i))
            if policy and policy_names.claim(policy.name,
                                             ctx.value_loc(("policies", i, "name"))):
                policies.append(policy)
                policy_paths[policy.name] = (ctx, ("policies", i))

    _check_interfaces(heps, errors)
    sets = [s for s in (_network_set(d, settings, baselines, errors) for d in drafts) if s]
    check_network_set_sizes(sets, drafts, settings, errors)
    warnings = check_untracked(heps, policies, policy_paths, errors)
    if errors:
        order = {f: i for i, f in enumerate(files)}
        errors.sort(key=lambda e: (order.get(e.loc.file, len(order)), e.loc.file,
                                   e.loc.line, e.loc.col))
        raise InputErrors(errors)
    policies.sort(key=lambda p: (p.order, p.name))
    return Profile(files=files, settings=settings, host_endpoints=tuple(heps),
                   network_sets=tuple(sets), policies=tuple(policies),
                   warnings=tuple(warnings))


def _check_interfaces(heps: list[HostEndpoint], errors: list[InputError]) -> None:
    """One host endpoint per named interface (the chains are per interface)."""
    seen: dict[str, HostEndpoint] = {}
    for hep in heps:
        if hep.interface == "*":
            continue
        first = seen.setdefault(hep.interface, hep)
        if first is not hep:
            errors.append(InputError(hep.loc, f"host endpoint '{hep.name}': interface "
                                     f"'{hep.interface}' is already used by host endpoint "
                                     f"'{first.name}' at {first.loc}"))
