"""Retries against the Graph API, chosen by Meta's error code; faults scripted on the fake."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from typing import Any

import pytest

from cel_whatsapp import GraphAPIError, GraphTransportError, Message, RetryPolicy
from cel_whatsapp.core.graph import GraphClient, parse_retry_after
from cel_whatsapp.core.retry import Retrier, Verdict, classify
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .conftest import TOKEN, MakeConnector, make_app, post_webhook

PAYLOAD = {"messaging_product": "whatsapp", "to": "111", "type": "text", "text": {"body": "hi"}}


def _error(code: int | None, status: int = 400, **kwargs: Any) -> GraphAPIError:
    return GraphAPIError("scripted", code=code, http_status=status, **kwargs)


@pytest.mark.parametrize("code", [1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131057, 133004])
def test_transient_codes_are_retried(code: int) -> None:
    assert classify(_error(code)) is Verdict.RETRY


@pytest.mark.parametrize(
    "code", [100, 131008, 131009, 131026, 131031, 131047, 190, 368, 131051, 10]
)
def test_permanent_codes_are_not_retried_whatever_the_status(code: int) -> None:
    assert classify(_error(code)) is Verdict.PERMANENT
    assert classify(_error(code, status=500)) is Verdict.PERMANENT


def test_unknown_code_is_not_retried() -> None:
    assert classify(_error(999999)) is Verdict.PERMANENT


def test_status_only_errors_and_transport_errors() -> None:
    assert classify(_error(None, status=502)) is Verdict.RETRY
    assert classify(_error(None, status=429)) is Verdict.RETRY
    assert classify(_error(None, status=400)) is Verdict.PERMANENT
    assert classify(_error(999999, status=503)) is Verdict.RETRY  # unknown code, server trouble
    assert classify(_error(131056)) is Verdict.RECIPIENT
    refused = GraphTransportError("refused", request_sent=False)
    timed_out = GraphTransportError("read timeout", request_sent=True)
    assert classify(refused) is Verdict.RETRY
    assert classify(timed_out) is Verdict.UNCERTAIN


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy.backoff(n, 0.0) for n in range(1, 5)] == [0.5, 1.0, 2.0, 2.5]
    assert [policy.backoff(n, 0.999) for n in range(1, 5)] == pytest.approx(
        [0.9995, 1.999, 3.998, 4.9975]
    )
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


class Script:
    """Raises the given errors in turn, then returns ``"ok"``; a fake clock and sleep."""

    def __init__(self, *errors: GraphAPIError) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def retrier(self, **policy: Any) -> Retrier:
        return Retrier(RetryPolicy(**policy), sleep=self.sleep, clock=self.clock, rand=lambda: 0.5)


def test_retrier_retries_transient_errors_then_succeeds() -> None:
    script = Script(_error(130429, 429), _error(None, 503))
    assert script.retrier(base_delay=1.0).call(script) == "ok"
    assert script.calls == 3
    assert script.sleeps == [0.75, 1.5]


def test_retrier_honours_retry_after() -> None:
    script = Script(_error(4, 400, retry_after=7.0))
    assert script.retrier().call(script) == "ok"
    assert script.sleeps == [7.0]


def test_retrier_stops_at_the_attempt_limit() -> None:
    script = Script(*[_error(131000, 500) for _ in range(5)])
    with pytest.raises(GraphAPIError) as info:
        script.retrier(attempts=3).call(script)
    assert info.value.code == 131000
    assert script.calls == 3


def test_retrier_stops_when_the_next_wait_passes_the_total_time() -> None:
    script = Script(*[_error(2, 500) for _ in range(10)])
    with pytest.raises(GraphAPIError):
        script.retrier(attempts=10, total_time=5.0, base_delay=1.0).call(script)
    assert script.sleeps == [0.75, 1.5]  # the next (3.0) would end past 5 s
    assert sum(script.sleeps) <= 5.0


def test_retry_after_longer_than_the_time_left_gives_up_at_once() -> None:
    script = Script(_error(130429, 429, retry_after=3600))
    with pytest.raises(GraphAPIError):
        script.retrier(total_time=60).call(script)
    assert script.sleeps == []


@pytest.mark.parametrize(
    "error",
    [_error(131047), _error(190, 401), GraphTransportError("read timeout", request_sent=True)],
)
def test_permanent_and_uncertain_errors_are_raised_at_once(error: GraphAPIError) -> None:
    script = Script(error)
    with pytest.raises(GraphAPIError) as info:
        script.retrier().call(script)
    assert info.value is error
    assert script.calls == 1 and script.sleeps == []


def test_pair_rate_limit_holds_back_that_recipient_only() -> None:
    script = Script(_error(131056))
    retrier = script.retrier(pair_rate_delay=6.0)
    assert retrier.call(script, recipient="111") == "ok"
    assert script.sleeps == [6.0]
    assert retrier.pacer.wait_time("111") == 0.0  # waited out
    retrier.pacer.hold("111", 6.0)
    assert retrier.pacer.wait_time("111") == 6.0
    assert retrier.pacer.wait_time("222") == 0.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    from email.utils import formatdate

    seconds = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert seconds is not None and 25 <= seconds <= 31


# -- against the fake Graph API, over real sockets ------------------------------------


def test_throttled_twice_then_success_gives_one_reply_after_backoff(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=429, code=130429, message="(#130429) Rate limit hit", times=2)
    connector = make_connector(lambda m: "after backoff")
    connector.retry = RetryPolicy(base_delay=0.1)  # real waits, a fifth of the default's
    client = make_app(connector).test_client()
    assert post_webhook(client, text_webhook("hi")).status_code == 200
    # The fake records every attempt: the same payload three times, the first
    # two answered 429, the third accepted. One reply reached the user.
    attempts = graph.requests
    assert [r.json["text"]["body"] for r in attempts] == ["after backoff"] * 3
    assert attempts[0].json == attempts[1].json == attempts[2].json
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # base 0.1 s, doubled, half of it jitter


def test_throttled_with_retry_after_waits_that_long(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=429, code=130429, times=1, retry_after=0.3)
    client = make_app(make_connector(lambda m: "ok")).test_client()
    post_webhook(client, text_webhook("hi"))
    first, second = graph.requests
    assert second.at - first.at >= 0.3


def test_outside_24h_window_is_not_retried_and_reported(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    graph.fail_next(status=400, code=131047, message="Re-engagement message", times=1)
    connector = make_connector(lambda m: "too late")
    reported: list[tuple[Message, GraphAPIError]] = []

    @connector.on_send_error
    def report(message: Message, error: GraphAPIError) -> None:
        reported.append((message, error))

    client = make_app(connector).test_client()
    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        post_webhook(client, text_webhook("hi", id="wamid.LATE"))
    assert len(graph.requests) == 1
    [(message, error)] = reported
    assert message.id == "wamid.LATE"
    assert error.code == 131047 and error.retryable is False
    assert "131047" in caplog.text


def test_exhausted_retries_are_reported_too(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=503, code=None, times=10, retry_after=0.01)
    connector = make_connector(lambda m: "x", retry_attempts=3)
    reported: list[GraphAPIError] = []
    connector.on_send_error(lambda message, error: reported.append(error))
    post_webhook(make_app(connector).test_client(), text_webhook("hi"))
    assert len(graph.requests) == 3
    assert [e.http_status for e in reported] == [503]


def test_on_send_error_that_raises_is_logged(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    graph.fail_next(status=400, code=131026, times=1)
    connector = make_connector(lambda m: "x")

    @connector.on_send_error
    def broken(message: Message, error: GraphAPIError) -> None:
        raise RuntimeError("handler bug")

    with caplog.at_level(logging.ERROR, logger="cel_whatsapp"):
        response = post_webhook(make_app(connector).test_client(), text_webhook("hi"))
    assert response.status_code == 200
    assert "on_send_error handler raised" in caplog.text


def test_connection_refused_is_retried_until_the_api_is_back() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers: list[FakeGraphAPI] = []

    def sleep(seconds: float) -> None:
        # The first backoff: the Graph API comes up on the port that refused.
        if not servers:
            servers.append(FakeGraphAPI(port=port, token=TOKEN).start())

    retrier = Retrier(RetryPolicy(attempts=3), sleep=sleep)
    client = GraphClient(TOKEN, f"http://127.0.0.1:{port}/v25.0", retry=retrier, timeout=2)
    try:
        answer = client.send_message("123", PAYLOAD)
        assert answer["messages"][0]["id"].startswith("wamid.")
        [server] = servers
        assert len(server.sent()) == 1
    finally:
        for server in servers:
            server.stop()


def test_read_timeout_is_not_retried_and_reported(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=200, code=None, delay=1.0)
    connector = make_connector(lambda m: "maybe delivered", timeout=(2, 0.2))
    reported: list[GraphAPIError] = []
    connector.on_send_error(lambda message, error: reported.append(error))
    post_webhook(make_app(connector).test_client(), text_webhook("hi"))
    # Inline dispatch: the POST returns after the send was given up and
    # reported, so a retry would be recorded already (the fake records each
    # request as it arrives, before its late answer).
    assert len(graph.requests) == 1
    [error] = reported
    assert isinstance(error, GraphTransportError) and error.request_sent is True


def test_pair_rate_limit_delays_only_that_recipient(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    slow_user, other_user = "15550000001", "15550000002"
    graph.fail_next(
        status=400,
        code=131056,
        message="(#131056) (Business Account, Consumer Account) pair rate limit hit",
        match=lambda r: isinstance(r.json, dict) and r.json.get("to") == slow_user,
    )
    connector = make_connector(lambda m: f"to {m.lead.id}", dispatch="background")
    connector.retry = RetryPolicy(pair_rate_delay=0.6)
    client = make_app(connector).test_client()
    try:
        post_webhook(client, text_webhook("first", sender=slow_user))
        assert graph.wait_for(lambda g: len(g.requests) == 1, 5)
        post_webhook(client, text_webhook("second", sender=other_user))
        assert connector.drain(10)
    finally:
        connector.dispatcher.shutdown(5)
    refused, *rest = graph.requests
    delivered = {r.json["to"]: r.at for r in rest}
    assert refused.json["to"] == slow_user
    assert delivered[other_user] - refused.at < 0.5  # not held back
    assert delivered[slow_user] - refused.at >= 0.6  # held back the pair-rate delay


def test_retries_run_in_parallel_threads_safely(graph: FakeGraphAPI) -> None:
    graph.fail_next(status=500, code=2, times=8, retry_after=0.01)
    client = GraphClient(TOKEN, graph.base_url, retry=RetryPolicy(attempts=10))
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.send_message("1", PAYLOAD)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len(graph.requests) == 12


def test_recipient_held_past_the_time_limit_gives_up_without_sending() -> None:
    script = Script()
    retrier = script.retrier(total_time=10.0)
    retrier.pacer.hold("111", 60.0)
    with pytest.raises(GraphAPIError) as info:
        retrier.call(script, recipient="111")
    assert info.value.code == 131056
    assert script.calls == 0 and script.sleeps == []
    assert retrier.call(script, recipient="222") == "ok"  # other users are not held
