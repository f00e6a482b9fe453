"""A worker process of the rate-control tests: sends messages from one number.

``python -m tests.rate_sender REDIS_URL GRAPH_URL COUNT FIRST RATE`` sends
COUNT texts to distinct users (numbered from FIRST) through a connector whose
RedisStore shares its rate control with every other process using that Redis,
then prints how many were sent and how many failed.
"""

from __future__ import annotations

import sys

from cel_whatsapp import GraphAPIError, RedisStore, WhatsappConnector
from cel_whatsapp.core.rates import RateControl

from .conftest import PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN


def main(redis_url: str, graph_url: str, count: int, first: int, rate: float) -> None:
    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        base_url=graph_url,
        store=RedisStore.from_url(redis_url),
        delivery_rate_control=RateControl(messages_per_second=rate),
        dispatch="inline",
    )
    sent = failed = 0
    for index in range(first, first + count):
        try:
            connector.send(f"+1650555{index:04d}", f"message {index}")
            sent += 1
        except GraphAPIError as exc:
            failed += 1
            sys.stderr.write(f"{index}: {exc}\n")
    sys.stdout.write(f"sent={sent} failed={failed}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
