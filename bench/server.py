"""Child processes of the bench: the lean fake Graph API and gunicorn.

Worker CPU is read from ``/proc/<pid>/stat`` (``utime + stime`` of every
thread of the worker, in clock ticks), peak memory from ``VmHWM`` in
``/proc/<pid>/status``: the workers' own figures, not the load generator's
nor the master's.
"""

from __future__ import annotations

import compileall
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import API_VERSION

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def byte_compile(*packages: str) -> None:
    """Write the ``.pyc`` files of ``packages``, as ``pip install`` does for a wheel.

    The servers' workers then load our code the way they load Flask's. Without
    this, a machine that sets ``PYTHONDONTWRITEBYTECODE`` (as CI images often
    do) makes every worker compile the package from source at start-up, and
    the compiler's scratch memory would be counted in the connector's RSS.
    """
    for name in packages:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(location, quiet=1)


# -- /proc ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5) (state): utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_kib(pid: int) -> int:
    """The largest resident set ``pid`` has had (``VmHWM``), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def children_of(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            pids.append(int(entry))
    return sorted(pids)


# -- the fake Graph API -------------------------------------------------------------


class FakeGraphProcess:
    """``python -m bench.fake_graph`` in its own process (``delay``: see its ``--delay``)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_graph", "--delay", repr(delay)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"the fake Graph API did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/{API_VERSION}"

    def _call(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_stats")
        return result

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def reset_totals(self) -> None:
        self._call("POST", "/_reset_totals")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Poll the stats until ``predicate(stats)`` holds or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not predicate(self.stats()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> FakeGraphProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- gunicorn -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSample:
    """Summed CPU seconds of the workers at one moment."""

    cpu: float
    pids: tuple[int, ...]


class Gunicorn:
    """gunicorn serving ``bench.apps:build(...)`` on a free local port."""

    def __init__(
        self,
        app: str,
        *,
        env: Mapping[str, str],
        workers: int = 2,
        worker_class: str = "sync",
        threads: int = 1,
    ) -> None:
        self.port = free_port()
        self.workers = workers
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--timeout",
            "60",
            "--graceful-timeout",
            "3",
            "--backlog",
            "256",
            app,
        ]
        # gunicorn's own log (e.g. workers killed on a quick stop) goes to a
        # file, shown only if it fails to start.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="cel-bench-gunicorn-", suffix=".log"
        )
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stderr=self.log, stdout=self.log
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-2000:]
                self.log.close()
                raise RuntimeError(
                    f"gunicorn exited with status {self.process.returncode}:\n{tail}"
                )
            if len(self.worker_pids()) >= self.workers:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        self.close()
        raise RuntimeError("gunicorn did not start in time")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def sample(self) -> WorkerSample:
        pids = tuple(self.worker_pids())
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue  # a worker that just exited
        return WorkerSample(total, pids)

    def peak_rss_kib(self) -> int:
        peaks = []
        for pid in self.worker_pids():
            try:
                peaks.append(peak_rss_kib(pid))
            except OSError:
                continue
        return max(peaks, default=0)

    def close(self, *, quick: bool = False) -> None:
        """Stop gunicorn; ``quick`` skips the graceful wait for pending work."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT if quick else signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
