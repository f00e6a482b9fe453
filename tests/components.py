"""Real components for the tests: redis-server and gunicorn, on 127.0.0.1 only.

A test needing a component that is not installed is skipped with the reason,
except under ``CEL_WHATSAPP_REQUIRE_COMPONENTS=1`` (set by ``.ci/run``), where
it fails instead.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def require(executable: str, why: str) -> str:
    """The path of ``executable``; skip (or fail under CI) when it is missing."""
    path = shutil.which(executable)
    if path is None:
        skip_or_fail(f"{executable} is not installed ({why}); .ci/run installs it with apt-get")
    assert path is not None
    return path


def skip_or_fail(reason: str) -> None:
    """Skip for a missing component; fail instead under CEL_WHATSAPP_REQUIRE_COMPONENTS=1."""
    if os.environ.get("CEL_WHATSAPP_REQUIRE_COMPONENTS") == "1":
        pytest.fail(reason + " and CEL_WHATSAPP_REQUIRE_COMPONENTS=1 forbids skipping")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def wait_for_app(port: int, timeout: float) -> None:
    """Until a worker answers the webhook's GET (403 without a verify token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/whatsapp")
            if connection.getresponse().status == 403:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError(f"the app on 127.0.0.1:{port} did not answer within {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway redis-server on a free local port; yields its URL."""
    executable = require("redis-server", "needed for RedisStore and cross-worker ordering")
    port = free_port()
    log = (directory / "redis.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, 10, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)
        log.close()


@contextmanager
def gunicorn(
    app: str,
    *,
    workers: int,
    env: Mapping[str, str],
    log_path: Path,
    extra_args: tuple[str, ...] = (),
    config: str = str(ROOT / "sample_app" / "gunicorn.conf.py"),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """gunicorn with the sample app's config file (or ``config``), on a free local port.

    Yields the base URL and the arbiter process (to signal it).
    """
    port = free_port()
    full_env = {**os.environ, **env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            config,
            "--chdir",
            str(ROOT),
            # Also given as BIND and WEB_CONCURRENCY, which only the sample's config reads.
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            *extra_args,
            app,
        ],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, 30, process)
        wait_for_app(port, 30)
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process, timeout=60)
        log.close()
