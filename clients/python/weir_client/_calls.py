"""The routes of Weir's HTTP API as transport-free call descriptions.

Each function here builds a :class:`Call`: the method, path, parameters and body of one
request, and how to turn its JSON answer into a typed value. The sync and async clients run
the same calls, so both speak the API identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, Sequence, TypeVar, Union

from .types import Accepted, Decision, Result

T = TypeVar("T")

Event = Mapping[str, Any]
"""One event in any shape Weir accepts (SPEC section 1), e.g. ``{"type": "click", "x": 1}``."""

Time = Union[int, str]
"""A time: unix milliseconds, or any string Weir parses (RFC 3339, ``YYYY-MM-DD HH:MM:SS``)."""


@dataclass
class Call(Generic[T]):
    """One request and the parser of its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: List[tuple] = field(default_factory=list)
    json: Any = None
    content: Optional[str] = None
    raw: bool = False
    """The answer is text (``/metrics``), not JSON."""


def _identity(v: Any) -> Any:
    return v


def _key(field: str) -> Callable[[Any], Any]:
    return lambda v: v[field]


def health() -> Call[bool]:
    return Call("GET", "/healthz", lambda _: True)


def apply(dsl: str) -> Call[List[Dict[str, Any]]]:
    return Call("POST", "/api/statements", _key("results"), content=dsl)


def queries() -> Call[List[Dict[str, Any]]]:
    return Call("GET", "/api/queries", _key("queries"))


def query(name: str) -> Call[Dict[str, Any]]:
    return Call("GET", f"/api/queries/{name}", _identity)


def drop_query(name: str, cascade: bool = False) -> Call[Dict[str, Any]]:
    params = [("cascade", "true")] if cascade else []
    return Call("DELETE", f"/api/queries/{name}", _identity, params=params)


def rules() -> Call[List[Dict[str, Any]]]:
    return Call("GET", "/api/rules", _key("rules"))


def rule(name: str) -> Call[Dict[str, Any]]:
    return Call("GET", f"/api/rules/{name}", _identity)


def drop_rule(name: str) -> Call[Dict[str, Any]]:
    return Call("DELETE", f"/api/rules/{name}", _identity)


def result(
    name: str,
    at: Optional[Time] = None,
    from_: Optional[Time] = None,
    to: Optional[Time] = None,
    step: Optional[str] = None,
    keys: Optional[Mapping[str, Any]] = None,
) -> Call[Result]:
    params: List[tuple] = []
    for k, v in (("at", at), ("from", from_), ("to", to), ("step", step)):
        if v is not None:
            params.append((k, str(v)))
    for k, v in (keys or {}).items():
        params.append((f"key.{k}", str(v)))
    return Call("GET", f"/api/queries/{name}/result", Result.from_json, params=params)


def add_events(events: Sequence[Event], durable: bool = False) -> Call[Accepted]:
    params = [("wait", "durable")] if durable else []
    return Call("POST", "/api/events", Accepted.from_json, params=params, json={"events": list(events)})


def check(event: Event) -> Call[Decision]:
    return Call("POST", "/api/check", Decision.from_json, json=dict(event))


def check_many(events: Sequence[Event]) -> Call[List[Decision]]:
    return Call("POST", "/api/check", lambda v: [Decision.from_json(d) for d in v], json=list(events))


def add_and_check(event: Event) -> Call[Decision]:
    return Call("POST", "/api/add_and_check", Decision.from_json, json=dict(event))


def add_and_check_many(events: Sequence[Event]) -> Call[List[Decision]]:
    return Call(
        "POST", "/api/add_and_check", lambda v: [Decision.from_json(d) for d in v], json=list(events)
    )


def events(
    page: int = 1,
    limit: int = 100,
    start: Optional[Time] = None,
    end: Optional[Time] = None,
    event_type: Union[None, str, Iterable[str]] = None,
    session: Optional[str] = None,
    category: Optional[str] = None,
    group_by_session: bool = False,
) -> Call[Dict[str, Any]]:
    params: List[tuple] = [("page", str(page)), ("limit", str(limit))]
    for k, v in (("startDate", start), ("endDate", end), ("session", session), ("category", category)):
        if v is not None:
            params.append((k, str(v)))
    if isinstance(event_type, str):
        params.append(("eventType", event_type))
    elif event_type is not None:
        params.extend(("eventType", t) for t in event_type)
    if group_by_session:
        params.append(("groupBy", "session"))
    return Call("GET", "/api/events", _identity, params=params)


def json_query(q: Mapping[str, Any]) -> Call[Dict[str, Any]]:
    return Call("POST", "/api/query", _identity, json=dict(q))


def stats(event_type: Optional[str] = None) -> Call[Dict[str, Any]]:
    path = "/api/stats" if event_type is None else f"/api/stats/{event_type}"
    return Call("GET", path, _identity)


def keys(event_type: Optional[str] = None) -> Call[Dict[str, Any]]:
    params = [] if event_type is None else [("type", event_type)]
    return Call("GET", "/api/keys", _identity, params=params)


def schemas() -> Call[Dict[str, Any]]:
    return Call("GET", "/api/schemas", _identity)


def put_schema(event_type: str, schema: Mapping[str, Any]) -> Call[Dict[str, Any]]:
    return Call("PUT", f"/api/schemas/{event_type}", _identity, json=dict(schema))


def delete_schema(event_type: str) -> Call[Dict[str, Any]]:
    return Call("DELETE", f"/api/schemas/{event_type}", _identity)


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _identity, raw=True)


def body_bytes(call: Call[Any]) -> Optional[bytes]:
    """The request body as bytes (JSON, or the DSL text)."""
    if call.content is not None:
        return call.content.encode()
    if call.json is not None:
        return json.dumps(call.json).encode()
    return None


def content_type(call: Call[Any]) -> Optional[str]:
    if call.content is not None:
        return "text/plain"
    if call.json is not None:
        return "application/json"
    return None
