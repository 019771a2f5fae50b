"""Python client for Weir, the streaming complex-event-processing engine.

>>> from weir_client import Client
>>> with Client("http://127.0.0.1:8080") as weir:
...     weir.apply("CREATE RULE cap AS SELECT count(*) AS n FROM neworder "
...                "GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN n > 100")
...     weir.add_and_check({"type": "neworder", "seller": "x"}).allowed
True
"""

from .client import DEFAULT_URL, AsyncClient, Client
from .types import Accepted, Decision, Result, Row, RuleDecision, WeirError

__all__ = [
    "Client",
    "AsyncClient",
    "DEFAULT_URL",
    "Accepted",
    "Decision",
    "Result",
    "Row",
    "RuleDecision",
    "WeirError",
]
__version__ = "0.1.0"
