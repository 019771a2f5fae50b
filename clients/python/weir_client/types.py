"""Typed answers of Weir's HTTP API, and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class WeirError(Exception):
    """An error answer (4xx/5xx) from Weir, or a server that could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came), ``error`` Weir's message;
    DSL errors also carry the 1-based ``line`` and ``column`` of the offending text.
    """

    def __init__(self, status: Optional[int], error: str, body: Optional[Dict[str, Any]] = None):
        self.status = status
        self.error = error
        self.body: Dict[str, Any] = body or {}
        self.line: Optional[int] = self.body.get("line")
        self.column: Optional[int] = self.body.get("column")
        where = f" at line {self.line}, column {self.column}" if self.line is not None else ""
        super().__init__(f"{status or 'no answer'}: {error}{where}")


@dataclass
class Accepted:
    """The answer to an add: how many events were accepted, their ids, and whether they are
    already durable (``wait=durable``) or only applied and queued for the log."""

    accepted: int
    ids: List[int]
    durable: bool

    @staticmethod
    def from_json(v: Dict[str, Any]) -> "Accepted":
        return Accepted(int(v["accepted"]), list(v.get("ids", [])), bool(v.get("durable", False)))


@dataclass
class RuleDecision:
    """One matching rule's part of a decision."""

    rule: str
    key: Dict[str, Any]
    value: Any
    threshold: Optional[float]
    window: Optional[str]
    decision: str
    window_start: Optional[int] = None
    window_end: Optional[int] = None


@dataclass
class Decision:
    """The answer of check and add_and_check: allow or deny, with every matching rule."""

    decision: str
    event_id: Optional[int]
    rules: List[RuleDecision] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @staticmethod
    def from_json(v: Dict[str, Any]) -> "Decision":
        rules = [
            RuleDecision(
                rule=r["rule"],
                key=r.get("key", {}),
                value=r.get("value"),
                threshold=r.get("threshold"),
                window=r.get("window"),
                decision=r["decision"],
                window_start=r.get("window_start"),
                window_end=r.get("window_end"),
            )
            for r in v.get("rules", [])
        ]
        return Decision(v["decision"], v.get("event_id"), rules)


@dataclass
class Row:
    """One result row: the group key, the values, and the bucket or window bounds (unix ms)."""

    key: Dict[str, Any]
    values: Dict[str, Any]
    bucket_start: Optional[int] = None
    window_start: Optional[int] = None
    window_end: Optional[int] = None


@dataclass
class Result:
    """The rows of a query read; ``extra`` keeps any other field of the answer (e.g. the window
    end from which a sliding query read as a series is complete)."""

    rows: List[Row]
    extra: Dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def from_json(v: Dict[str, Any]) -> "Result":
        rows = [
            Row(
                key=r.get("key", {}),
                values=r.get("values", {}),
                bucket_start=r.get("bucket_start"),
                window_start=r.get("window_start"),
                window_end=r.get("window_end"),
            )
            for r in v.get("rows", [])
        ]
        return Result(rows, {k: x for k, x in v.items() if k != "rows"})

    def by_key(self) -> Dict[tuple, Row]:
        """The rows by their group key's values (in key order), for rows of one window."""
        return {tuple(sorted(r.key.items())): r for r in self.rows}
