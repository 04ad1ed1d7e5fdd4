"""Small pure formatting helpers: sizes, rates, sparklines, gauges, plan summaries.

Everything here is plain text so that it reads the same with NO_COLOR, in a
16-colour terminal and in a tmux capture."""
from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def human(n: float, unit: str = "", base: int = 1000) -> str:
    """1234 -> '1.2k', 5_000_000 -> '5.0M' (base 1024 for bytes)."""
    n = float(n)
    for suffix in ("", "k", "M", "G", "T"):
        if abs(n) < base or suffix == "T":
            if suffix == "":
                text = f"{n:.0f}" if n == int(n) else f"{n:.1f}"
            else:
                text = f"{n:.1f}{suffix}"
            return text + unit
        n /= base
    raise AssertionError("unreachable")


def human_bytes(n: float) -> str:
    return human(n, "B", 1024)


def rate(per_second: float | None, unit: str = "/s") -> str:
    if per_second is None:
        return "-"
    return human(per_second) + unit


def byte_rate(per_second: float | None) -> str:
    if per_second is None:
        return "-"
    return human(per_second, "B", 1024) + "/s"


def sparkline(values: Sequence[float], width: int = 12, top: float | None = None) -> str:
    """The last `width` values as block characters, scaled to their own maximum or
    to `top` (a fixed scale, e.g. the conntrack table's size: 7 of 262144 is the
    lowest block, not a full one)."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    top = max(vals) if not top or top <= 0 else max(top, max(vals))
    if top <= 0:
        return BLOCKS[0] * len(vals)
    steps = len(BLOCKS) - 1
    return "".join(BLOCKS[min(steps, round(v / top * steps))] if v > 0 else BLOCKS[0]
                   for v in vals)


def gauge(fraction: float, width: int = 20) -> str:
    """'[#########-----------]' with the fill clamped to 0..1."""
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def parse_loc(loc: str) -> tuple[str, int, int] | None:
    """'path/to/f.toml:12:5' -> ('path/to/f.toml', 12, 5); None when malformed."""
    parts = loc.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


def rule_position(direction: str, index: int) -> str:
    """'in[0]' / 'eg[2]'; engine-internal rules (index < 0) show just 'in' / 'eg'."""
    short = direction[:2]
    return f"{short}[{index}]" if index >= 0 else short


def clip(text: str, width: int, *, middle: bool = False) -> str:
    """`text` in at most `width` characters, an ellipsis marking the cut (at the end,
    or in the middle so that both ends - e.g. the ports of a rule summary - stay)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    if not middle:
        return text[:width - 1] + "…"
    tail = (width - 1) // 2
    return text[:width - 1 - tail] + "…" + text[len(text) - tail:]


def preview_summary(p) -> str:
    """One line of counts for a PlanPreview (the Apply screen and its dialog)."""
    return (f"rules +{p.rules_added} -{p.rules_removed}  chains +{p.chains_added} "
            f"-{p.chains_removed}  sets +{p.sets_added} -{p.sets_removed}  "
            f"members +{p.set_members_added} -{p.set_members_removed}")
