"""Scenario 6: what delivery rate control costs a streamed answer.

One connector answers in-process (inline dispatch) against the package's
own fake Graph API on 127.0.0.1, with ``delivery_rate_control`` on (the
default figures) and off, measured in turns. The assistant streams three
sentences to each user; the figures are the time from the webhook to
the first sentence's arrival at the fake, and to the whole answer's. Meta's
pair rate allows bursts of 45 messages, so a short answer should go out at
the same speed either way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask import Flask

from cel_whatsapp import Message, WhatsappConnector
from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers, text_webhook

from .constants import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN
from .results import Target, table

SENTENCES = ("Hello there. ", "The shop opens at nine. ", "See you soon!")
#: The first sentence may be this much slower with rate control on, in ms.
TARGET_EXTRA_MS = 2.0


@dataclass
class RateRow:
    """One setting of ``delivery_rate_control``."""

    setting: str
    answers: int
    first_ms: float
    whole_ms: float
    messages: int
    targets: list[Target] = field(default_factory=list)


def _streaming(message: Message) -> Iterator[str]:
    yield from SENTENCES


def _client(graph: FakeGraphAPI, rate_control: bool) -> tuple[Flask, WhatsappConnector]:
    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        app_secret=APP_SECRET,
        base_url=graph.base_url,
        read_receipts=False,
        dispatch="inline",
        assistant=_streaming,
        delivery_rate_control=rate_control,
    )
    app = Flask(f"bench_rates_{rate_control}")
    connector.init_app(app)
    return app, connector


def measure(*, smoke: bool) -> list[RateRow]:
    """Answers with rate control on and off, in turns; medians per setting."""
    answers = 5 if smoke else 40
    firsts: dict[bool, list[float]] = {True: [], False: []}
    wholes: dict[bool, list[float]] = {True: [], False: []}
    counts = {True: 0, False: 0}
    with FakeGraphAPI(token=TOKEN) as graph:
        clients = {on: _client(graph, on)[0].test_client() for on in (True, False)}
        for index in range(answers):
            for on in (True, False):
                graph.reset()
                # A user of its own per answer: 40 answers to one user would meet
                # Meta's pair rate (45 messages, then one every 6 s), as intended.
                raw = encode(
                    text_webhook(
                        "hi", id=f"wamid.RATE{on:d}{index:05d}", sender=f"1650555{index:04d}"
                    )
                )
                started = time.monotonic()
                response = clients[on].post(
                    "/whatsapp", data=raw, headers=signed_headers(raw, APP_SECRET)
                )
                assert response.status_code == 200
                sent = graph.sent()
                assert len(sent) == len(SENTENCES), len(sent)
                counts[on] += len(sent)
                firsts[on].append((sent[0].at - started) * 1000)
                wholes[on].append((sent[-1].at - started) * 1000)
    rows = []
    for on in (True, False):
        rows.append(
            RateRow(
                "on (Meta's figures)" if on else "off",
                answers,
                statistics.median(firsts[on]),
                statistics.median(wholes[on]),
                counts[on],
            )
        )
    extra = rows[0].first_ms - rows[1].first_ms
    rows[0].targets.append(
        Target(
            f"1st sentence <= off + {TARGET_EXTRA_MS:g} ms ({extra:+.2f})",
            None if smoke else extra <= TARGET_EXTRA_MS,
        )
    )
    return rows


def rate_table(rows: list[RateRow]) -> str:
    headers = [
        "rate control",
        "answers",
        "messages",
        "webhook -> 1st sentence ms (median)",
        "webhook -> whole answer ms",
        "target",
        "result",
    ]
    body = [
        [
            r.setting,
            str(r.answers),
            str(r.messages),
            f"{r.first_ms:.2f}",
            f"{r.whole_ms:.2f}",
            "; ".join(t.text for t in r.targets),
            " ".join(t.verdict for t in r.targets),
        ]
        for r in rows
    ]
    return table(headers, body, right={1, 2, 3, 4})
