"""Messages the thread workers post back to the app (Textual's post_message is
thread-safe)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Connected(Message):
    is_root: bool


@dataclass
class EngineFailed(Message):
    """A worker's engine call raised; `what` names the call."""

    what: str
    text: str


@dataclass
class StatusArrived(Message):
    report: Any  # StatusReport
    received: float  # the app clock when it arrived
    seq: int  # EngineClient call number: older than a mutation -> pending info is stale


@dataclass
class SampleArrived(Message):
    sample: Any  # ConntrackSample


@dataclass
class Validated(Message):
    path: str  # the profile the text belongs to
    generation: int  # edit counter: stale results are dropped
    problems: list  # list[files.Problem]
    warnings: list
    jump: bool = False  # move the cursor to the first error when it arrives


@dataclass
class KernelTextReady(Message):
    rule_id: str
    lines: list  # RenderedRule.line() of each kernel rule, or the error


@dataclass
class TextReady(Message):
    """Lines for a dialog that asked the engine (explain, history), or the error."""
    lines: list
    request: int = 0  # which of the dialog's requests this answers (explain: the last wins)


@dataclass
class HoldingReady(Message):
    address: str
    ids: frozenset  # ids of the rules whose networks hold the address
    generation: int | None  # the generation asked about


@dataclass
class DiffReady(Message):
    preview: Any  # PlanPreview


@dataclass
class Applied(Message):
    result: Any  # ApplyResult
    seq: int


@dataclass
class Decided(Message):
    """confirm() or rollback() finished."""

    kept: bool
    seq: int


@dataclass
class Commanded(Message):
    """A command from the palette (panic on/off, rollback) finished."""

    what: str  # what the operator asked for, as shown ("panic on", "rollback")
    detail: str  # the engine's answer, for the notification
    seq: int
