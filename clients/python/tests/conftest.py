"""Start a real `weir serve` for the tests (on a free loopback port, with a temp data dir).

The binary is `$WEIR_BIN`, or the workspace's `target/debug/weir` (built by the test script).
"""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]


def weir_bin() -> str:
    path = os.environ.get("WEIR_BIN") or str(ROOT / "target" / "debug" / "weir")
    if not os.path.exists(path):
        pytest.fail(f"no weir binary at {path}: run `cargo build` first or set WEIR_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Weir:
    """A running server."""

    def __init__(self, data_dir: str, port: int):
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self, wait: bool = True) -> "Weir":
        env = dict(os.environ, RUST_LOG=os.environ.get("WEIR_TEST_LOG", "warn"))
        self.proc = subprocess.Popen(
            [weir_bin(), "serve", "--http", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir],
            env=env,
        )
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, seconds: float = 30.0) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"weir serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"weir serve on {self.url} not healthy after {seconds}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def weir():
    with tempfile.TemporaryDirectory() as d:
        server = Weir(d, free_port()).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def unstarted():
    """A server's address and data dir, not yet started (the test starts it)."""
    with tempfile.TemporaryDirectory() as d:
        server = Weir(d, free_port())
        try:
            yield server
        finally:
            server.stop()
