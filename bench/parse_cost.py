"""Scenario 4: what parsing costs, in this process, per payload type.

"parse + model" is :func:`cel_whatsapp.core.parsing.parse_webhook` on the decoded
body (schemas, then :class:`~cel_whatsapp.model.Message` and ``Lead``);
"with JSON decode" adds ``json.loads`` of the raw bytes, as the webhook does.
Each figure is the best of several repeats, the usual way to read
micro-benchmarks on a shared machine (the slower repeats measure the
neighbours). The last row is the whole POST handler without sending:
signature check, decode, parse and model.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.core.webhook import WebhookHandler
from cel_whatsapp.model import Message
from cel_whatsapp.testing import encode

from . import payloads
from .constants import APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN
from .results import ParseRow, Target

#: A single text message, JSON decode included, parsed through marshmallow's
#: public API and translated to the model, in µs (issue 13; a plain nested
#: schema load of the same envelope measured about 75 µs).
SINGLE_TEXT_TARGET_US = 100.0


def _best_us(*fns: Callable[[], Any], budget: float, repeats: int) -> list[float]:
    """Best time of one call of each function in µs.

    The functions are timed in turns, ``repeats`` times for about ``budget``
    seconds each, so a busy moment of the machine weighs on all of them.
    """
    timers = [timeit.Timer(fn) for fn in fns]
    for timer in timers:
        timer.timeit(number=200)  # warm caches and lazy set-up before timing
    numbers = []
    for timer in timers:
        took = timer.timeit(number=10) / 10
        numbers.append(max(1, int(budget / took)) if took else 1000)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for index, (timer, number) in enumerate(zip(timers, numbers, strict=True)):
            best[index] = min(best[index], timer.timeit(number=number) / number * 1e6)
    return best


def measure(*, smoke: bool) -> list[ParseRow]:
    """Time every payload, all in turns (see :func:`_best_us`)."""
    budget, repeats = (0.005, 2) if smoke else (0.02, 9)
    # The repository's fixtures (one per message type, status and error) when
    # there are some; the bench's own few payload types otherwise.
    fixtures = payloads.fixture_files()
    bodies: dict[str, bytes] = {"text": encode(payloads.text_body())}
    if fixtures:
        bodies.update((f"tests/data/{name}", raw) for name, raw in fixtures.items())
    else:
        bodies.update((name, encode(build())) for name, build in payloads.BUILT_IN.items())
    bodies["batch of 100 texts"] = encode(payloads.batch_body(100))

    rows: list[ParseRow] = []
    functions: list[Callable[[], Any]] = []
    for name, raw in bodies.items():
        data = json.loads(raw)
        parsed = parse_webhook(data, phone_number_id=None)
        assert all(isinstance(m, Message) for m in parsed.messages)

        def parse(data: Any = data) -> None:
            parse_webhook(data, phone_number_id=None)

        def decode_and_parse(raw: bytes = raw) -> None:
            parse_webhook(json.loads(raw), phone_number_id=None)

        functions += [parse, decode_and_parse]
        rows.append(ParseRow(name, len(parsed.messages), 0.0, 0.0))
    functions.append(_handler())
    costs = _best_us(*functions, budget=budget, repeats=repeats)
    for index, row in enumerate(rows):
        row.parse_us, row.with_json_us = costs[2 * index], costs[2 * index + 1]
        if row.payload == "text":
            row.targets.append(
                Target(
                    f"<= {SINGLE_TEXT_TARGET_US:.0f} us with decode",
                    None if smoke else row.with_json_us <= SINGLE_TEXT_TARGET_US,
                )
            )
    rows.append(
        ParseRow(
            "text, whole POST handler (signature + decode + parse), no send",
            1,
            costs[-1],
            costs[-1],
        )
    )
    return rows


def _handler() -> Callable[[], Any]:
    """The POST handler without sending: signature, decode, parse, model."""
    delivered: list[int] = []
    handler = WebhookHandler(
        verify_token=VERIFY_TOKEN,
        phone_number_id=PHONE_NUMBER_ID,
        app_secret=APP_SECRET,
        on_messages=lambda messages: delivered.append(len(messages)),
    )
    raw, headers = payloads.signed(payloads.text_body())
    signature = headers["X-Hub-Signature-256"]
    result = handler.receive(raw, signature)
    assert result.status == 200 and delivered == [1], result

    def receive() -> None:
        handler.receive(raw, signature)

    return receive
