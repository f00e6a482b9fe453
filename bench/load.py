"""Load generators: ``wrk`` with a Lua script when installed, else a Python fallback.

Both post the distinct signed webhooks of a load file (see
:func:`bench.payloads.write_load_file`) over ``connections`` concurrent
connections for ``duration`` seconds, to 127.0.0.1 only, and report completed
requests, errors and latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
#: The same, with a pause before each request (``pause_ms``).
PACED_LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_paced.lua"


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(
    url: str,
    bodies: Path,
    *,
    duration: float,
    connections: int = 16,
    use_wrk: bool | None = None,
    pause_ms: float = 0.0,
) -> LoadResult:
    """Drive ``url`` with the bodies file; ``wrk`` when available unless ``use_wrk=False``.

    ``pause_ms`` makes each connection wait that long before each request,
    which paces the load at about ``connections / (pause + latency)`` a second.
    """
    if use_wrk is None:
        use_wrk = wrk_available()
    _check_local(url)
    if use_wrk:
        return _run_wrk(url, bodies, duration=duration, connections=connections, pause_ms=pause_ms)
    return asyncio.run(
        _run_python(url, bodies, duration=duration, connections=connections, pause_ms=pause_ms)
    )


def _check_local(url: str) -> None:
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError("load is only ever sent to 127.0.0.1")


def _run_wrk(
    url: str, bodies: Path, *, duration: float, connections: int, pause_ms: float = 0.0
) -> LoadResult:
    threads = min(2, connections)  # wrk needs a connection per thread
    paced = [str(round(pause_ms))] if pause_ms > 0 else []
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(PACED_LUA_SCRIPT if paced else LUA_SCRIPT),
        url,
        "--",
        str(bodies),
        str(threads),
        *paced,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 60
    )
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    errors = data["errors"]
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        # Non-2xx answers, timeouts and failed writes are errors. gunicorn's
        # sync workers close every connection after answering, which wrk may
        # count as a connect or read error on the next request of that
        # connection without any request being lost, so those are left out.
        errors=errors["status"] + errors["timeout"] + errors["write"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        tool="wrk",
    )


# -- the Python fallback -------------------------------------------------------------------


def _read_bodies(path: Path) -> list[tuple[str, bytes]]:
    lines = []
    with path.open(encoding="ascii") as source:
        for line in source:
            signature, _, body = line.rstrip("\n").partition("\t")
            lines.append((signature, body.encode("ascii")))
    return lines


async def _run_python(
    url: str, bodies: Path, *, duration: float, connections: int, pause_ms: float = 0.0
) -> LoadResult:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    items = _read_bodies(bodies)
    latencies: list[float] = []
    errors = 0
    next_index = 0
    start = time.perf_counter()
    deadline = start + duration

    async def client() -> None:
        nonlocal errors, next_index
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            if pause_ms > 0:
                await asyncio.sleep(pause_ms / 1000)
            signature, body = items[next_index % len(items)]
            next_index += 1
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nX-Hub-Signature-256: {signature}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode("ascii") + body
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                keep_alive = True
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"connection":
                        keep_alive = value.strip().lower() != b"close"
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    errors += 1
                if not keep_alive:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        errors=errors,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        tool="python",
    )


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]
