"""What the worst bodies under the size cap cost: ``python -m bench.hostile_cost``.

Each row is one signed body of at most ``DEFAULT_MAX_BODY_BYTES`` shaped to
make the webhook work hard: many entries, changes or updates, long lists
inside one message, huge strings, deep nesting. It is posted once to a
:class:`~cel_whatsapp.core.webhook.WebhookHandler` with an ``InMemoryStore`` and a
no-op ``on_updates``, as an attacker holding the app secret (or facing an
app without one) could post it. The table gives the CPU time of
``json.loads`` alone (a floor nobody avoids), of the whole ``receive``, the
answer, and the log records at INFO and above (what the sample app and
its gunicorn config keep) with their total size. A row stopped at ``--budget`` CPU seconds
prints ``>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cel_whatsapp import config
from cel_whatsapp.config import DEFAULT_MAX_BODY_BYTES
from cel_whatsapp.core.dedup import InMemoryStore
from cel_whatsapp.core.signature import sign
from cel_whatsapp.core.webhook import WebhookHandler

from .constants import APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN

LIMIT = DEFAULT_MAX_BODY_BYTES
#: The items a POST may hold (read this way so the bench also runs on code without the cap).
CAP: int = getattr(config, "DEFAULT_MAX_ITEMS_PER_POST", 10_000)
_METADATA = {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID}
_TEXT = {
    "from": "16315551181",
    "id": "wamid.HOSTILE",
    "timestamp": "1700000000",
    "type": "text",
    "text": {"body": "hi"},
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _fill(head: bytes, item: bytes, tail: bytes, *, room: int = LIMIT) -> bytes:
    """``head + item,item,...,item + tail``, with as many items as fit in ``room`` bytes."""
    count = max(1, (room - len(head) - len(tail) + 1) // (len(item) + 1))
    return head + b",".join([item] * count) + tail


def _numbered(head: bytes, make: Callable[[int], bytes], tail: bytes) -> bytes:
    """Like :func:`_fill`, for items that differ (distinct ids)."""
    parts: list[bytes] = []
    size = len(head) + len(tail)
    index = 0
    while True:
        item = make(index)
        if size + len(item) + 1 > LIMIT:
            break
        parts.append(item)
        size += len(item) + 1
        index += 1
    return head + b",".join(parts) + tail


def _around(doc: Any) -> tuple[bytes, bytes]:
    """The bytes of ``doc`` before and after its one ``"@"`` string (where filler goes)."""
    head, tail = _dumps(doc).split(b'"@"')
    return head, tail


def _env(**value: Any) -> dict[str, Any]:
    """An envelope of one ``messages`` change holding ``value`` (with our metadata)."""
    change = {"field": "messages", "value": {"metadata": _METADATA, **value}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}


def _text(index: int) -> dict[str, Any]:
    return {**_TEXT, "id": f"wamid.M{index:08d}", "from": f"1631{index:07d}"}


def _status(index: int) -> dict[str, Any]:
    return {
        "id": f"wamid.S{index:08d}",
        "status": "delivered",
        "timestamp": "1700000000",
        "recipient_id": "16315551181",
    }


def _in(doc: dict[str, Any], item: bytes) -> Callable[[], bytes]:
    """A builder repeating ``item`` where ``doc`` holds ``"@"``, up to the size cap."""
    head, tail = _around(doc)
    return lambda: _fill(head, item, tail)


def _distinct(doc: dict[str, Any], make: Callable[[int], Any]) -> Callable[[], bytes]:
    """Like :func:`_in`, with items that differ (distinct ids)."""
    head, tail = _around(doc)
    return lambda: _numbered(head, lambda i: _dumps(make(i)), tail)


def _entries_with_one_text() -> bytes:
    def entry(index: int) -> bytes:
        return _dumps(_env(messages=[_text(index)])["entry"][0])

    return _numbered(b'{"entry":[', entry, b"]}")


def _contacts_and_messages() -> bytes:
    """``value.contacts`` filling most of the body, and 2,500 messages to match."""
    messages = [_text(i) for i in range(2500)]
    head, tail = _around(_env(contacts=["@"], messages=messages))
    return _fill(head, b"{}", tail)


def _with(doc: dict[str, Any], filler: bytes) -> Callable[[], bytes]:
    """A builder putting ``filler`` where ``doc`` holds ``"@"``."""

    def build() -> bytes:
        head, tail = _around(doc)
        return head + filler + tail

    return build


def _deep(depth: int) -> Callable[[], bytes]:
    return lambda: b'{"entry":' + b"[" * depth + b"]" * depth + b"}"


def shapes() -> dict[str, Callable[[], bytes]]:
    """Row name -> a builder of the body (built just before it is measured)."""
    huge = "x" * (LIMIT - 400)
    contacts_message = {**_TEXT, "type": "contacts"}
    flow = {
        "type": "nfm_reply",
        "nfm_reply": {
            "name": "flow",
            "response_json": json.dumps(_big_object(LIMIT - 800), separators=(",", ":")),
        },
    }
    return {
        "1,000 entries x 1,000 empty changes": lambda: _fill(
            b'{"entry":[', _fill(b'{"changes":[', b"{}", b"]}", room=LIMIT // 1000), b"]}"
        ),
        "empty entries {} (~1.1M)": lambda: _fill(b'{"entry":[', b"{}", b"]}"),
        "null entries (~700k)": lambda: _fill(b'{"entry":[', b"null", b"]}"),
        "changes of another field (~270k)": lambda: _fill(
            b'{"entry":[{"changes":[', b'{"field":"x"}', b"]}]}"
        ),
        "changes for another number (~55k)": lambda: _fill(
            b'{"entry":[{"changes":[',
            _dumps({"field": "messages", "value": {"metadata": {"phone_number_id": "9"}}}),
            b"]}]}",
        ),
        "empty statuses {} (~1.1M)": _in(_env(statuses=["@"]), b"{}"),
        "empty messages {} (~1.1M)": _in(_env(messages=["@"]), b"{}"),
        "empty echoes {} (~1.1M)": _in(_env(message_echoes=["@"]), b"{}"),
        "empty value.errors {} (~1.1M)": _in(_env(errors=["@"]), b"{}"),
        "valid statuses, distinct ids (~30k)": _distinct(_env(statuses=["@"]), _status),
        "valid texts, distinct ids (~20k)": _distinct(_env(messages=["@"]), _text),
        "one text per entry (~12k entries)": _entries_with_one_text,
        "the same text repeated (~20k)": _in(_env(messages=["@"]), _dumps(_text(0))),
        "value.contacts {} (~1.1M) + 2,500 texts": _contacts_and_messages,
        "contacts message, empty cards (~1.1M)": _in(
            _env(messages=[{**contacts_message, "contacts": ["@"]}]), b"{}"
        ),
        "contacts message, malformed cards (~300k)": _in(
            _env(messages=[{**contacts_message, "contacts": ["@"]}]), b'{"name":1}'
        ),
        "one card, empty phones (~1.1M)": _in(
            _env(messages=[{**contacts_message, "contacts": [{"phones": ["@"]}]}]), b"{}"
        ),
        "order, empty product_items (~1.1M)": _in(
            _env(messages=[{**_TEXT, "type": "order", "order": {"product_items": ["@"]}}]), b"{}"
        ),
        "messages[].errors {} (~1.1M)": _in(_env(messages=[{**_TEXT, "errors": ["@"]}]), b"{}"),
        "messages[].errors malformed (~300k)": _in(
            _env(messages=[{**_TEXT, "errors": ["@"]}]), b'{"code":"x"}'
        ),
        "statuses[].errors {} (~1.1M)": _in(
            _env(statuses=[{**_status(0), "errors": ["@"]}]), b"{}"
        ),
        "nfm_reply response_json, 3 MB object string": _with(
            _env(messages=[{**_TEXT, "type": "interactive", "interactive": "@"}]), _dumps(flow)
        ),
        "status pricing, an object of 3 MB": _with(
            _env(statuses=[{**_status(0), "pricing": "@"}]), _dumps(_big_object(LIMIT - 400))
        ),
        "text body of 3.5 MB": _with(
            _env(messages=[{**_TEXT, "text": {"body": "@"}}]), _dumps(huge)
        ),
        "message id of 3.5 MB": _with(_env(messages=[{**_TEXT, "id": "@"}]), _dumps(huge)),
        "the same 3.5 MB id, twice": _with(
            _env(messages=[{**_TEXT, "id": huge[: len(huge) // 2]}, "@"]),
            _dumps({**_TEXT, "id": huge[: len(huge) // 2]}),
        ),
        "nesting 1,750,000 deep": _deep((LIMIT - 20) // 2),
        "nesting 900 deep": _deep(900),
        **_at_the_cap(),
    }


def _repeat(doc: dict[str, Any], item: bytes, count: int) -> Callable[[], bytes]:
    """A builder putting ``count`` copies of ``item`` where ``doc`` holds ``"@"``."""
    head, tail = _around(doc)
    return lambda: head + b",".join([item] * count) + tail


def _each(doc: dict[str, Any], make: Callable[[int], Any], count: int) -> Callable[[], bytes]:
    """Like :func:`_repeat`, with ``count`` items that differ."""
    head, tail = _around(doc)
    return lambda: head + b",".join(_dumps(make(i)) for i in range(count)) + tail


def _at_the_cap() -> dict[str, Callable[[], bytes]]:
    """The costliest bodies that fit within the item cap (entry and change included)."""
    n = CAP - 2
    half = (CAP - 2) // 2
    wrong_status = {key: 1 for key in ("id", "status", "recipient_id", "pricing", "errors")}
    wrong_message = {key: 1 for key in ("id", "from", "type", "text", "context")}
    return {
        f"AT THE CAP: {n:,} empty statuses": _repeat(_env(statuses=["@"]), b"{}", n),
        f"{n:,} statuses, every field wrong": _repeat(
            _env(statuses=["@"]), _dumps({**wrong_status, "timestamp": "x"}), n
        ),
        f"{n:,} messages, every field wrong": _repeat(
            _env(messages=["@"]), _dumps({**wrong_message, "timestamp": "x"}), n
        ),
        f"{n:,} valid texts, distinct ids": _each(_env(messages=["@"]), _text, n),
        f"{n:,} valid statuses, distinct ids": _each(_env(statuses=["@"]), _status, n),
        f"{half:,} contacts + {half:,} texts": lambda: _dumps(
            _env(
                contacts=[{"wa_id": f"1631{i:07d}", "profile": {"name": "x"}} for i in range(half)],
                messages=[_text(i) for i in range(half)],
            )
        ),
        f"{CAP // 3:,} entries, one text each": _each(
            {"entry": ["@"]}, lambda i: _env(messages=[_text(i)])["entry"][0], CAP // 3
        ),
        f"{n - 1:,} malformed value.contacts + 1 text": _repeat(
            _env(messages=[_TEXT], contacts=["@"]), b'{"wa_id":1}', n - 1
        ),
        f"contacts message, {n - 1:,} malformed cards": _repeat(
            _env(messages=[{**_TEXT, "type": "contacts", "contacts": ["@"]}]),
            b'{"name":1,"phones":1}',
            n - 1,
        ),
        f"one message, {n - 1:,} malformed errors": _repeat(
            _env(messages=[{**_TEXT, "errors": ["@"]}]), b'{"code":"x"}', n - 1
        ),
        f"{half:,} flow replies, bad response_json": _repeat(
            _env(messages=["@"]),
            _dumps(
                {
                    **_TEXT,
                    "type": "interactive",
                    "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "[1]"}},
                }
            ),
            half,
        ),
    }


def _big_object(room: int) -> dict[str, int]:
    """An object of short keys whose JSON takes about ``room`` bytes."""
    return {f"k{i}": 0 for i in range(room // 16)}


class _Tally(logging.Handler):
    """Counts the records at INFO and above, and the characters they hold."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.chars = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.chars += len(record.getMessage())


class CpuBudgetExceeded(BaseException):
    """Raised in the middle of a measurement that used up its CPU budget."""


@contextmanager
def _cpu_budget(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise CpuBudgetExceeded

    previous = signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@dataclass
class Row:
    """One measured body."""

    name: str
    size: int
    decode_s: float
    receive_s: float
    stopped: bool
    status: str
    log_lines: int
    log_chars: int


def _handler() -> WebhookHandler:
    return WebhookHandler(
        verify_token=VERIFY_TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        app_secret=APP_SECRET,
        store=InMemoryStore(),
        on_updates=lambda parsed: None,
    )


def measure(name: str, raw: bytes, *, budget: float) -> Row:
    """Post ``raw`` once to a fresh handler; CPU seconds from ``time.process_time``."""
    assert len(raw) <= LIMIT, (name, len(raw))
    started = time.process_time()
    try:
        json.loads(raw)
        decode_s = time.process_time() - started
    except (ValueError, RecursionError):
        decode_s = time.process_time() - started
    handler = _handler()
    signature = sign(raw, APP_SECRET)
    tally = _Tally()
    package = logging.getLogger("cel_whatsapp")
    package.addHandler(tally)
    level = package.level
    package.setLevel(logging.INFO)  # DEBUG off, as in the sample app and its gunicorn config
    stopped = False
    status = "-"
    started = time.process_time()
    try:
        with _cpu_budget(budget):
            status = str(handler.receive(raw, signature).status)
    except CpuBudgetExceeded:
        stopped = True
    finally:
        took = time.process_time() - started
        package.removeHandler(tally)
        package.setLevel(level)
    return Row(name, len(raw), decode_s, took, stopped, status, tally.count, tally.chars)


def table(rows: list[Row]) -> str:
    """The rows as an RST table."""
    header = (
        "Body (<= 3.5 MB)",
        "bytes",
        "json.loads s",
        "receive s",
        "answer",
        "log lines",
        "log chars",
    )
    lines = [
        (
            row.name,
            f"{row.size:,}",
            f"{row.decode_s:.3f}",
            (">" if row.stopped else "") + f"{row.receive_s:.3f}",
            row.status,
            f"{row.log_lines:,}",
            f"{row.log_chars:,}",
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    rule = " ".join("=" * w for w in widths)
    out = [rule, " ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule]
    out += [" ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.append(rule)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_cost", description=__doc__)
    parser.add_argument(
        "--budget", type=float, default=30.0, help="CPU seconds per row before it is stopped"
    )
    parser.add_argument("--only", help="rows whose name contains this text")
    args = parser.parse_args(argv)
    rows = []
    for name, build in shapes().items():
        if args.only and args.only not in name:
            continue
        rows.append(measure(name, build(), budget=args.budget))
        print(f"  {name}: {rows[-1].receive_s:.3f} s", flush=True)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
