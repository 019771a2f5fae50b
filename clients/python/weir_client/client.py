"""The sync and async clients.

Both run the calls of :mod:`weir_client._calls` with httpx: a timeout on every request, and
retries with exponential backoff on 503 answers and on connection errors (refused or
timed-out connects: the request never reached the server, so a retry cannot count it twice) (a server that is
starting, restarting or briefly overloaded). Any other error answer raises :class:`WeirError`
at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, TypeVar

import httpx

from . import _calls as c
from ._calls import Call, Event, Time
from .types import Accepted, Decision, Result, WeirError

T = TypeVar("T")

# Only errors where the request cannot have reached the server are retried, so a retried add
# is never counted twice; a 503 means Weir applied nothing.
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)

DEFAULT_URL = "http://127.0.0.1:8080"


class _Base:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: Optional[str] = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout)

    def _request_args(self, call: Call[Any]) -> Dict[str, Any]:
        headers = dict(self._headers)
        ct = c.content_type(call)
        if ct:
            headers["Content-Type"] = ct
        return {
            "method": call.method,
            "url": self.url + call.path,
            "params": call.params,
            "content": c.body_bytes(call),
            "headers": headers,
        }

    @staticmethod
    def _finish(call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text}
            raise WeirError(response.status_code, str(body.get("error", body)), body)
        if call.raw:
            return call.parse(response.text)
        return call.parse(response.json() if response.content else None)

    def _delay(self, attempt: int) -> float:
        return self.backoff * (2**attempt)


class Client(_Base):
    """A blocking client. Use it as a context manager, or call :meth:`close`.

    >>> with Client("http://127.0.0.1:8080") as weir:
    ...     weir.add_and_check({"type": "neworder", "seller": "x", "amount": 10}).allowed
    """

    def __init__(self, url: str = DEFAULT_URL, **kw: Any) -> None:
        super().__init__(url, **kw)
        self._http = httpx.Client(timeout=self._timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: Call[T]) -> T:
        """Run one call, retrying on 503 and connection errors."""
        attempt = 0
        while True:
            try:
                response = self._http.request(**self._request_args(call))
            except _RETRYABLE as e:
                if attempt >= self.retries:
                    raise WeirError(None, f"cannot reach {self.url}: {e}") from e
            else:
                if response.status_code != 503 or attempt >= self.retries:
                    return self._finish(call, response)
            time.sleep(self._delay(attempt))
            attempt += 1

    # --- statements, queries, rules ------------------------------------------------------
    def health(self) -> bool:
        return self.run(c.health())

    def apply(self, dsl: str) -> List[Dict[str, Any]]:
        """Apply DSL statements; a parse error raises WeirError with line and column."""
        return self.run(c.apply(dsl))

    def queries(self) -> List[Dict[str, Any]]:
        return self.run(c.queries())

    def query(self, name: str) -> Dict[str, Any]:
        return self.run(c.query(name))

    def drop_query(self, name: str, cascade: bool = False) -> Dict[str, Any]:
        return self.run(c.drop_query(name, cascade))

    def rules(self) -> List[Dict[str, Any]]:
        return self.run(c.rules())

    def rule(self, name: str) -> Dict[str, Any]:
        return self.run(c.rule(name))

    def drop_rule(self, name: str) -> Dict[str, Any]:
        return self.run(c.drop_rule(name))

    def result(
        self,
        name: str,
        *,
        at: Optional[Time] = None,
        from_: Optional[Time] = None,
        to: Optional[Time] = None,
        step: Optional[str] = None,
        keys: Optional[Mapping[str, Any]] = None,
    ) -> Result:
        """A query's rows: at ``at`` (sliding windows), or ``from_``/``to`` (series)."""
        return self.run(c.result(name, at, from_, to, step, keys))

    # --- events and decisions ------------------------------------------------------------
    def add_event(self, event: Event, durable: bool = False) -> Accepted:
        return self.run(c.add_events([event], durable))

    def add_events(self, events: Sequence[Event], durable: bool = False) -> Accepted:
        """Add a batch; any invalid event refuses the whole batch (WeirError, status 400)."""
        return self.run(c.add_events(events, durable))

    def send_events(self, events: Iterable[Event], batch_size: int = 1000, durable: bool = True) -> int:
        """Send any number of events in batches of ``batch_size``; returns how many were accepted."""
        total = 0
        for batch in _batches(events, batch_size):
            total += self.add_events(batch, durable).accepted
        return total

    def check(self, event: Event) -> Decision:
        return self.run(c.check(event))

    def check_many(self, events: Sequence[Event]) -> List[Decision]:
        return self.run(c.check_many(events))

    def add_and_check(self, event: Event) -> Decision:
        return self.run(c.add_and_check(event))

    def add_and_check_many(self, events: Sequence[Event]) -> List[Decision]:
        return self.run(c.add_and_check_many(events))

    # --- event store and analytics -------------------------------------------------------
    def events(self, **filters: Any) -> Dict[str, Any]:
        """Stored events: page, limit, start, end, event_type, session, category, group_by_session."""
        return self.run(c.events(**filters))

    def json_query(self, q: Mapping[str, Any]) -> Dict[str, Any]:
        return self.run(c.json_query(q))

    def stats(self, event_type: Optional[str] = None) -> Dict[str, Any]:
        return self.run(c.stats(event_type))

    def keys(self, event_type: Optional[str] = None) -> Dict[str, Any]:
        return self.run(c.keys(event_type))

    def schemas(self) -> Dict[str, Any]:
        return self.run(c.schemas())

    def put_schema(self, event_type: str, schema: Mapping[str, Any]) -> Dict[str, Any]:
        return self.run(c.put_schema(event_type, schema))

    def delete_schema(self, event_type: str) -> Dict[str, Any]:
        return self.run(c.delete_schema(event_type))

    def metrics(self) -> str:
        return self.run(c.metrics())


class AsyncClient(_Base):
    """The same calls as :class:`Client`, awaitable (``async with AsyncClient(url) as weir``)."""

    def __init__(self, url: str = DEFAULT_URL, **kw: Any) -> None:
        super().__init__(url, **kw)
        self._http = httpx.AsyncClient(timeout=self._timeout)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, call: Call[T]) -> T:
        """Run one call, retrying on 503 and connection errors."""
        attempt = 0
        while True:
            try:
                response = await self._http.request(**self._request_args(call))
            except _RETRYABLE as e:
                if attempt >= self.retries:
                    raise WeirError(None, f"cannot reach {self.url}: {e}") from e
            else:
                if response.status_code != 503 or attempt >= self.retries:
                    return self._finish(call, response)
            await asyncio.sleep(self._delay(attempt))
            attempt += 1

    async def health(self) -> bool:
        return await self.run(c.health())

    async def apply(self, dsl: str) -> List[Dict[str, Any]]:
        return await self.run(c.apply(dsl))

    async def queries(self) -> List[Dict[str, Any]]:
        return await self.run(c.queries())

    async def query(self, name: str) -> Dict[str, Any]:
        return await self.run(c.query(name))

    async def drop_query(self, name: str, cascade: bool = False) -> Dict[str, Any]:
        return await self.run(c.drop_query(name, cascade))

    async def rules(self) -> List[Dict[str, Any]]:
        return await self.run(c.rules())

    async def rule(self, name: str) -> Dict[str, Any]:
        return await self.run(c.rule(name))

    async def drop_rule(self, name: str) -> Dict[str, Any]:
        return await self.run(c.drop_rule(name))

    async def result(
        self,
        name: str,
        *,
        at: Optional[Time] = None,
        from_: Optional[Time] = None,
        to: Optional[Time] = None,
        step: Optional[str] = None,
        keys: Optional[Mapping[str, Any]] = None,
    ) -> Result:
        return await self.run(c.result(name, at, from_, to, step, keys))

    async def add_event(self, event: Event, durable: bool = False) -> Accepted:
        return await self.run(c.add_events([event], durable))

    async def add_events(self, events: Sequence[Event], durable: bool = False) -> Accepted:
        return await self.run(c.add_events(events, durable))

    async def send_events(
        self, events: Iterable[Event], batch_size: int = 1000, durable: bool = True, concurrency: int = 4
    ) -> int:
        """Send events in batches, up to ``concurrency`` requests at once; returns the accepted count."""
        sem = asyncio.Semaphore(concurrency)

        async def one(batch: List[Event]) -> int:
            async with sem:
                return (await self.add_events(batch, durable)).accepted

        counts = await asyncio.gather(*(one(b) for b in _batches(events, batch_size)))
        return sum(counts)

    async def check(self, event: Event) -> Decision:
        return await self.run(c.check(event))

    async def check_many(self, events: Sequence[Event]) -> List[Decision]:
        return await self.run(c.check_many(events))

    async def add_and_check(self, event: Event) -> Decision:
        return await self.run(c.add_and_check(event))

    async def add_and_check_many(self, events: Sequence[Event]) -> List[Decision]:
        return await self.run(c.add_and_check_many(events))

    async def events(self, **filters: Any) -> Dict[str, Any]:
        return await self.run(c.events(**filters))

    async def json_query(self, q: Mapping[str, Any]) -> Dict[str, Any]:
        return await self.run(c.json_query(q))

    async def stats(self, event_type: Optional[str] = None) -> Dict[str, Any]:
        return await self.run(c.stats(event_type))

    async def keys(self, event_type: Optional[str] = None) -> Dict[str, Any]:
        return await self.run(c.keys(event_type))

    async def schemas(self) -> Dict[str, Any]:
        return await self.run(c.schemas())

    async def put_schema(self, event_type: str, schema: Mapping[str, Any]) -> Dict[str, Any]:
        return await self.run(c.put_schema(event_type, schema))

    async def delete_schema(self, event_type: str) -> Dict[str, Any]:
        return await self.run(c.delete_schema(event_type))

    async def metrics(self) -> str:
        return await self.run(c.metrics())


def _batches(events: Iterable[Event], size: int) -> Iterable[List[Event]]:
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    batch: List[Event] = []
    for e in events:
        batch.append(e)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["Client", "AsyncClient", "DEFAULT_URL"]

