"""The package used as seed 004's applications would use it, against a real `weir serve`."""

import asyncio
import threading
import time
import uuid

import pytest

from weir_client import AsyncClient, Client, WeirError

T0 = 1_700_000_040_000  # a fixed event time (unix ms), on a whole minute


def party(session: str, app: str, path: str, ts: int) -> dict:
    """A seed 004 event."""
    return {
        "session_id": session,
        "category": "party",
        "name": app,
        "data": {"host": "www.party.com", "path": path},
        "timestamp": ts,
    }


def test_two_trusted_clients_send_sessions_read_back_in_time_order(weir):
    sessions = {app: str(uuid.uuid4()) for app in ("AppOne", "AppTwo")}

    def send(app: str) -> None:
        with Client(weir.url) as c:
            events = [party(sessions[app], app, f"/p{i}", T0 + (20 - i) * 1000) for i in range(20)]
            assert c.send_events(events, batch_size=7) == 20

    threads = [threading.Thread(target=send, args=(app,)) for app in sessions]
    [t.start() for t in threads]
    [t.join() for t in threads]

    with Client(weir.url) as c:
        page = c.events(category="party", limit=100)
        assert page["total"] == 40
        grouped = c.events(category="party", group_by_session=True, limit=100)
        by_id = {s["session_id"]: s["events"] for s in grouped["sessions"]}
        for app, sid in sessions.items():
            evs = by_id[sid]
            assert len(evs) == 20
            assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs), "ordered by time"
            assert all(e["fields"]["name"] == app for e in evs)
        one = c.events(session=sessions["AppOne"], limit=5, page=2)
        assert one["total"] == 20 and len(one["events"]) == 5


def test_validation_errors_say_what_and_nothing_of_the_batch_is_kept(weir):
    with Client(weir.url) as c:
        c.put_schema(
            "party",
            {"type": "object", "required": ["host", "path"], "properties": {"path": {"pattern": "^/"}}},
        )
        good = party("s1", "A", "/", T0)
        bad_path = party("s1", "A", "nope", T0)
        bad_time = dict(party("s1", "A", "/", T0), timestamp="26/09/2021 9:15")
        with pytest.raises(WeirError) as e:
            c.add_events([good, bad_path, bad_time], durable=True)
        assert e.value.status == 400
        indexes = {err["index"] for err in e.value.body["errors"]}
        assert {1, 2} <= indexes
        assert c.events(category="party")["total"] == 0, "a refused batch keeps nothing"
        assert c.add_events([good], durable=True).accepted == 1


def test_dsl_error_carries_line_and_column(weir):
    with Client(weir.url) as c:
        with pytest.raises(WeirError) as e:
            c.apply("CREATE QUERY ok AS SELECT count(*) AS n FROM click;\nCREATE QUERY bad AS SELECT count(* FROM click")
        assert e.value.status == 400
        assert e.value.line == 2 and e.value.column is not None
        assert c.queries() == [], "an error applies nothing"


def test_series_results_equal_a_recount(weir):
    with Client(weir.url) as c:
        c.apply(
            "CREATE QUERY per_min AS SELECT count(*) AS n, sum(amount) AS total FROM neworder "
            "GROUP BY seller, timeseries(time, 1min)"
        )
        events = []
        for i in range(300):
            events.append({"type": "neworder", "seller": f"s{i % 3}", "amount": i, "ts": T0 + i * 1000})
        assert c.send_events(events, batch_size=64) == 300
        rows = c.result("per_min", from_=T0, to=T0 + 10 * 60_000).rows
        expect = {}
        for e in events:
            k = (e["seller"], e["ts"] // 60_000 * 60_000)
            n, s = expect.get(k, (0, 0))
            expect[k] = (n + 1, s + e["amount"])
        got = {(r.key["seller"], r.bucket_start): (r.values["n"], r.values["total"]) for r in rows}
        assert got == expect
        only = c.result("per_min", from_=T0, to=T0 + 60_000, keys={"seller": "s1"}).rows
        assert [r.key["seller"] for r in only] == ["s1"]


def test_check_is_read_only_and_add_and_check_counts(weir):
    with Client(weir.url) as c:
        c.apply(
            "CREATE RULE cap AS SELECT count(*) AS n FROM neworder "
            "GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN n > 2"
        )
        e = {"type": "neworder", "seller": "x"}
        assert c.check(e).allowed
        decisions = [c.add_and_check(e) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, False, False]
        deny = decisions[2]
        assert deny.rules[0].rule == "cap" and deny.rules[0].threshold == 2
        # check decides without the event: 2 counted, `n > 2` is false, so it still allows.
        still = c.check(e)
        assert still.allowed and still.rules[0].value == 2
        many = c.add_and_check_many([{"type": "neworder", "seller": "y"}] * 3)
        assert [d.allowed for d in many] == [True, True, False]


async def test_async_client_admits_exactly_the_limit_under_concurrency(weir):
    async with AsyncClient(weir.url) as c:
        await c.apply(
            "CREATE RULE hundred AS SELECT count(*) AS n FROM neworder "
            "GROUP BY seller, timeseries(time, 1s, 1h) DENY WHEN n > 100"
        )
        e = {"type": "neworder", "seller": "usedcardealer"}
        decisions = await asyncio.gather(*(c.add_and_check(e) for _ in range(300)))
        assert sum(d.allowed for d in decisions) == 100


async def test_async_send_events_counts_every_event(weir):
    async with AsyncClient(weir.url) as c:
        sent = await c.send_events(({"type": "click", "i": i, "ts": T0 + i} for i in range(2500)), batch_size=100)
        assert sent == 2500
        page = await c.events(event_type="click", limit=1)
        assert page["total"] == 2500


def test_retries_until_the_server_is_up(unstarted):
    """Connection errors are retried with backoff: a client that starts first still gets through."""
    starter = threading.Timer(0.5, lambda: unstarted.start(wait=False))
    starter.start()
    try:
        with Client(unstarted.url, retries=8, backoff=0.1) as c:
            t = time.time()
            assert c.add_event({"type": "click"}, durable=True).accepted == 1
            assert time.time() - t >= 0.4
    finally:
        starter.join()


def test_no_retry_without_a_server_gives_a_clear_error(unstarted):
    with Client(unstarted.url, retries=1, backoff=0.01) as c:
        with pytest.raises(WeirError) as e:
            c.health()
        assert e.value.status is None and "cannot reach" in e.value.error
