"""CeleryDispatcher in one process: publishing from the webhook, and one job run at a time.

A real redis-server holds the store, the leads' queues and the done marks;
no worker runs here: publishing is recorded or fails on purpose, and jobs
are run by calling the dispatcher as the task would, with a stand-in for
Celery's task object. The real workers are in test_celery_workers.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cel_whatsapp import RedisStore, WhatsappConnector
from cel_whatsapp.core.dedup import message_key
from cel_whatsapp.core.dispatch import lead_key
from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.core.turns import LeadTurns, new_token
from cel_whatsapp.errors import ConfigurationError
from cel_whatsapp.testing import FakeGraphAPI, text_message, webhook

from .components import free_port, skip_or_fail
from .conftest import APP_SECRET, TOKEN, MakeConnector, make_app, post_webhook

pytestmark = pytest.mark.integration

try:
    from celery import Celery
except ImportError:  # pragma: no cover - CI installs it
    Celery = None

SENDER = "16315550001"
OTHER = "16315550002"
NOW = int(time.time())


@pytest.fixture(autouse=True)
def _celery() -> None:
    if Celery is None:
        skip_or_fail('celery is not installed (pip install -e ".[test]")')


class Published:
    """Stands in for ``apply_async``: records each job, or fails from the ``fail_at``-th."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.options: list[dict[str, Any]] = []
        self.fail_at = fail_at

    def __call__(self, *, kwargs: dict[str, Any], **options: Any) -> None:
        if self.fail_at is not None and len(self.jobs) + 1 >= self.fail_at:
            raise ConnectionRefusedError("the broker is down")
        json.dumps(kwargs)  # what the json serializer would do
        self.jobs.append(kwargs)
        self.options.append(options)


class Retried(Exception):  # noqa: N818 - stands for Celery's Retry
    def __init__(self, kwargs: dict[str, Any], countdown: float) -> None:
        super().__init__(countdown)
        self.kwargs = kwargs
        self.countdown = countdown


class StubTask:
    """What ``run_job`` uses of Celery's bound task: ``request.id`` and ``retry``."""

    class request:  # noqa: N801 - mirrors Celery's attribute
        id = "job-1"

    def retry(self, *, kwargs: dict[str, Any], countdown: float, max_retries: None) -> None:
        raise Retried(kwargs, countdown)


@pytest.fixture
def connector(
    make_connector: MakeConnector, redis_url: str, redis_client: Any
) -> Iterator[WhatsappConnector]:
    from cel_whatsapp.celery import CeleryDispatcher

    app = Celery("cel_whatsapp_unit", broker="memory://")
    yield make_connector(
        lambda message: f"echo: {message.text}",
        store=RedisStore.from_url(redis_url),
        dispatch=CeleryDispatcher(app, lease_ttl=2.0),
    )


def _body(*texts_and_times: tuple[str, int], sender: str = SENDER) -> dict[str, Any]:
    return webhook(
        *(text_message(text, sender=sender, timestamp=at) for text, at in texts_and_times)
    )


def _publish_to(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> Published:
    published = Published(**kw)
    monkeypatch.setattr(connector.dispatcher.task, "apply_async", published)  # type: ignore[attr-defined]
    return published


def test_the_webhook_publishes_one_json_job_per_message_in_timestamp_order(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, redis_client: Any
) -> None:
    published = _publish_to(connector, monkeypatch)
    body = _body(("third", NOW + 2), ("first", NOW), ("second", NOW + 1))
    body["entry"][0]["changes"][0]["value"]["messages"].append(
        text_message("other lead", sender=OTHER, timestamp=NOW)
    )
    response = post_webhook(make_app(connector).test_client(), body)
    assert response.status_code == 200
    texts = [job["payload"]["message"]["text"]["body"] for job in published.jobs]
    assert texts[:1] == ["first"] and texts.index("second") < texts.index("third")
    assert {job["payload"]["name"] for job in published.jobs} == {"whatsapp"}
    assert all(o["serializer"] == "json" and o["queue"] is None for o in published.options)
    assert TOKEN not in json.dumps(published.jobs) and APP_SECRET not in json.dumps(published.jobs)
    # Each lead's queue holds its messages in timestamp order, as the jobs' members say.
    message = parse_webhook(body, phone_number_id=None).messages[0]
    queue = [
        m.decode() for m in redis_client.zrange(f"cel_whatsapp:jobqueue:{lead_key(message)}", 0, -1)
    ]
    mine = [job["member"] for job in published.jobs if job["payload"]["contact"]["wa_id"] == SENDER]
    assert queue == mine


def test_a_failed_publish_answers_503_and_releases_what_was_not_published(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, redis_client: Any
) -> None:
    published = _publish_to(connector, monkeypatch, fail_at=2)
    client = make_app(connector).test_client()
    body = _body(("one", NOW), ("two", NOW + 1), ("three", NOW + 2))
    ids = [m["id"] for m in body["entry"][0]["changes"][0]["value"]["messages"]]
    assert post_webhook(client, body).status_code == 503
    assert len(published.jobs) == 1
    claims = [
        redis_client.get(f"cel_whatsapp:dedup:{message_key(connector.phone_number_id or '', i)}")
        for i in ids
    ]
    assert claims == [b"1", None, None]
    # Meta delivers the same body again: only what was not published goes out.
    published.fail_at = None
    assert post_webhook(client, body).status_code == 200
    texts = [job["payload"]["message"]["text"]["body"] for job in published.jobs]
    assert texts == ["one", "two", "three"]
    queues = redis_client.keys("cel_whatsapp:jobqueue:*")
    members = redis_client.zrange(queues[0], 0, -1)
    assert [m.decode() for m in members] == [job["member"] for job in published.jobs]


def test_an_unreachable_broker_answers_503_at_once(
    make_connector: MakeConnector, redis_url: str, redis_client: Any
) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    down = Celery("cel_whatsapp_down", broker=f"redis://127.0.0.1:{free_port()}/0")
    connector = make_connector(
        None, store=RedisStore.from_url(redis_url), dispatch=CeleryDispatcher(down)
    )
    client = make_app(connector).test_client()
    body = _body(("hello", NOW))
    started = time.monotonic()
    assert post_webhook(client, body).status_code == 503
    assert time.monotonic() - started < 5
    assert redis_client.keys("cel_whatsapp:dedup:*") == []  # released: the redelivery is answered
    assert redis_client.keys("cel_whatsapp:jobqueue:*") == []  # its entry taken off again


def test_the_connector_store_must_be_a_redis_store(make_connector: MakeConnector) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    with pytest.raises(ConfigurationError, match="RedisStore"):
        make_connector(None, dispatch=CeleryDispatcher(Celery("x", broker="memory://")))


def test_one_dispatcher_serves_one_connector(make_connector: MakeConnector, redis_url: str) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    dispatcher = CeleryDispatcher(Celery("x", broker="memory://"))
    make_connector(None, store=RedisStore.from_url(redis_url), dispatch=dispatcher)
    with pytest.raises(ConfigurationError, match="its own"):
        make_connector(None, store=RedisStore.from_url(redis_url), dispatch=dispatcher, name="b")


# -- running jobs -------------------------------------------------------------------------


def _jobs(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, *texts_and_times: tuple[str, int]
) -> list[dict[str, Any]]:
    """Post the messages and return the jobs published for them."""
    published = _publish_to(connector, monkeypatch)
    assert (
        post_webhook(make_app(connector).test_client(), _body(*texts_and_times)).status_code == 200
    )
    return published.jobs


def _run(connector: WhatsappConnector, job: dict[str, Any]) -> str:
    from cel_whatsapp.celery import CeleryDispatcher

    dispatcher = connector.dispatcher
    assert isinstance(dispatcher, CeleryDispatcher)
    return dispatcher._jobs.run(
        StubTask(),
        job["payload"],
        member=job.get("member"),
        handoff=job.get("handoff"),
        rest=job.get("rest"),
        deferrals=job.get("deferrals", 0),
    )


def test_a_job_answers_marks_done_and_frees_the_lead(
    connector: WhatsappConnector,
    monkeypatch: pytest.MonkeyPatch,
    graph: FakeGraphAPI,
    redis_client: Any,
) -> None:
    (job,) = _jobs(connector, monkeypatch, ("hello", NOW))
    assert _run(connector, job) == "answered"
    assert graph.sent_texts() == ["echo: hello"]
    assert redis_client.get(f"cel_whatsapp:dedup:{_key(connector, job)}") == b"done"
    assert 0 < redis_client.ttl(f"cel_whatsapp:dedup:{_key(connector, job)}") <= 7 * 24 * 3600
    assert redis_client.keys("cel_whatsapp:joblease:*") == []
    assert redis_client.keys("cel_whatsapp:jobqueue:*") == []
    # The broker delivers the job again (a worker died before acknowledging it): nothing is sent.
    assert _run(connector, job) == "done"
    assert _run(connector, {**job, "member": None}) == "done"
    assert graph.sent_texts() == ["echo: hello"]


def _key(connector: WhatsappConnector, job: dict[str, Any]) -> str:
    return message_key(
        job["payload"]["metadata"]["phone_number_id"], job["payload"]["message"]["id"]
    )


def test_a_later_message_of_the_lead_waits_for_its_turn(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, graph: FakeGraphAPI
) -> None:
    first, second = _jobs(connector, monkeypatch, ("one", NOW), ("two", NOW + 1))
    with pytest.raises(Retried) as waited:
        _run(connector, second)
    assert 0 < waited.value.countdown <= 0.2
    assert waited.value.kwargs["member"] == second["member"]
    assert graph.sent_texts() == []
    assert _run(connector, first) == "answered"
    assert _run(connector, waited.value.kwargs) == "answered"
    assert graph.sent_texts() == ["echo: one", "echo: two"]


def test_a_long_graph_wait_becomes_a_retry_holding_the_lead(
    make_connector: MakeConnector,
    monkeypatch: pytest.MonkeyPatch,
    graph: FakeGraphAPI,
    redis_url: str,
    redis_client: Any,
) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    # Without rate control, whose shared pause would defer the retry again
    # when it runs at once, as here (see the next test).
    connector = make_connector(
        lambda message: f"echo: {message.text}",
        store=RedisStore.from_url(redis_url),
        dispatch=CeleryDispatcher(Celery("cel_whatsapp_unit", broker="memory://")),
        delivery_rate_control=False,
    )
    first, second = _jobs(connector, monkeypatch, ("one", NOW), ("two", NOW + 1))
    graph.fail_next(status=429, code=130429, message="throughput", retry_after=40)
    started = time.monotonic()
    with pytest.raises(Retried) as deferred:
        _run(connector, first)
    assert time.monotonic() - started < 2  # not slept in the worker
    retry = deferred.value.kwargs
    assert deferred.value.countdown == 40
    assert retry["deferrals"] == 1 and retry["handoff"]
    assert [payload["text"]["body"] for _, payload in retry["rest"]] == ["echo: one"]
    json.dumps(retry)  # still plain JSON
    # Meanwhile the lead is held for the rest of that answer: the next message waits.
    with pytest.raises(Retried):
        _run(connector, second)
    assert _run(connector, retry) == "answered"
    assert graph.sent_texts() == ["echo: one", "echo: one"]  # refused once, then sent
    assert _run(connector, second) == "answered"
    assert graph.sent_texts()[-1] == "echo: two"


def test_a_retry_before_the_number_pause_ends_is_deferred_again(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, graph: FakeGraphAPI
) -> None:
    """Rate control (the default) pauses the number for every worker sharing the Redis."""
    (job,) = _jobs(connector, monkeypatch, ("one", NOW))
    graph.fail_next(status=429, code=130429, message="throughput", retry_after=40)
    with pytest.raises(Retried) as deferred:
        _run(connector, job)
    with pytest.raises(Retried) as again:
        _run(connector, deferred.value.kwargs)  # 40 s early: the number is still paused
    assert 35 < again.value.countdown <= 40
    assert again.value.kwargs["deferrals"] == 2
    assert graph.sent_texts() == ["echo: one"]  # only the refused try reached the API


def test_deferrals_stop_after_the_retry_policy_attempts(
    make_connector: MakeConnector,
    redis_url: str,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    graph: FakeGraphAPI,
) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    connector = make_connector(
        lambda message: "hi",
        store=RedisStore.from_url(redis_url),
        dispatch=CeleryDispatcher(Celery("cel_whatsapp_unit", broker="memory://")),
        retry_attempts=2,
        delivery_rate_control=False,  # its shared pause would be waited for in real time
    )
    # The run that may not defer waits in the worker: not in this test.
    retrier = connector.core().graph.retrier
    monkeypatch.setattr(retrier, "_sleep", lambda seconds: None)
    errors: list[Any] = []
    connector.on_send_error(lambda message, error: errors.append(error.code))
    (job,) = _jobs(connector, monkeypatch, ("hello", NOW))
    graph.fail_next(status=400, code=131056, message="pair rate", times=10)
    with pytest.raises(Retried) as deferred:
        _run(connector, job)
    # Deferred as often as a send may be tried: the retry policy decides, here giving up.
    assert _run(connector, deferred.value.kwargs) == "answered"
    assert errors == [131056]


def test_a_job_for_an_unknown_connector_is_retried_later(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch, graph: FakeGraphAPI
) -> None:
    (job,) = _jobs(connector, monkeypatch, ("hello", NOW))
    job["payload"]["name"] = "elsewhere"
    with pytest.raises(Retried) as later:
        _run(connector, job)
    assert later.value.countdown == 30
    assert graph.sent_texts() == []


def test_a_malformed_job_is_dropped(
    connector: WhatsappConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job,) = _jobs(connector, monkeypatch, ("hello", NOW))
    del job["payload"]["message"]["timestamp"]
    assert _run(connector, job) == "malformed"


def test_a_worker_without_settings_retries_instead_of_dropping(
    make_connector: MakeConnector,
    redis_url: str,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cel_whatsapp.celery import CeleryDispatcher

    app = Celery("cel_whatsapp_unit", broker="memory://")
    web = make_connector(None, store=RedisStore.from_url(redis_url), dispatch=CeleryDispatcher(app))
    (job,) = _jobs(web, monkeypatch, ("hello", NOW))
    # The worker's connector has no token nor number (none in its environment).
    worker = WhatsappConnector(store=RedisStore.from_url(redis_url), dispatch=CeleryDispatcher(app))
    with pytest.raises(Retried) as later:
        _run(worker, job)
    assert later.value.countdown == 30


# -- the leads' queues in Redis -----------------------------------------------------------


@pytest.fixture
def turns(redis_url: str, redis_client: Any) -> LeadTurns:
    return LeadTurns(RedisStore.from_url(redis_url), lease_ttl=1.0, order_timeout=60.0)


def test_turns_follow_timestamps_then_arrival(turns: LeadTurns) -> None:
    late, early, tie = turns.enqueue([("L", "k1", 20.0), ("L", "k2", 10.0), ("L", "k3", 10.0)])
    assert not turns.take("L", late, "k1", 20.0, new_token()).granted
    assert turns.take("L", tie, "k3", 10.0, new_token()).ahead == 1
    token = new_token()
    assert turns.take("L", early, "k2", 10.0, token).granted
    assert not turns.take("L", tie, "k3", 10.0, new_token()).granted  # the lease is held
    turns.finish("L", early, token, "k2", done=True)
    assert turns.is_done("k2")
    assert turns.take("L", tie, "k3", 10.0, new_token()).granted


def test_a_copy_of_a_done_job_is_told_so_and_leaves_no_trace(
    turns: LeadTurns, redis_client: Any
) -> None:
    (member,) = turns.enqueue([("L", "k1", 1.0)])
    token = new_token()
    assert turns.take("L", member, "k1", 1.0, token).granted
    turns.finish("L", member, token, "k1", done=True)
    (again,) = turns.enqueue([("L", "k1", 1.0)])  # the copy queued again
    turn = turns.take("L", again, "k1", 1.0, new_token())
    assert turn.done and not turn.granted
    assert redis_client.keys("cel_whatsapp:jobqueue:*") == []
    assert redis_client.keys("cel_whatsapp:joblease:*") == []


def test_a_handed_off_lease_goes_to_its_retry_only(turns: LeadTurns) -> None:
    first, second = turns.enqueue([("L", "k1", 1.0), ("L", "k2", 2.0)])
    token, successor = new_token(), new_token()
    assert turns.take("L", first, "k1", 1.0, token).granted
    assert turns.hand_off("L", token, successor, 5.0)
    turns.finish("L", first, "not-the-holder", "k1", done=False)  # another run cannot free it
    assert not turns.take("L", second, "k2", 2.0, new_token()).granted
    assert turns.take("L", first, "k1", 1.0, new_token(), handoff=successor).granted


def test_a_dead_runs_lease_expires(turns: LeadTurns) -> None:
    (member,) = turns.enqueue([("L", "k1", 1.0)])
    assert turns.take("L", member, "k1", 1.0, new_token()).granted  # then the run dies
    assert not turns.take("L", member, "k1", 1.0, new_token()).granted
    time.sleep(1.1)
    assert turns.take("L", member, "k1", 1.0, new_token()).granted


def test_a_lease_held_is_renewed_while_the_answer_runs(turns: LeadTurns) -> None:
    (member,) = turns.enqueue([("L", "k1", 1.0)])
    token = new_token()
    assert turns.take("L", member, "k1", 1.0, token).granted
    with turns.holding("L", token):
        time.sleep(1.6)  # past the 1 s TTL
        assert not turns.take("L", member, "k1", 1.0, new_token()).granted
    time.sleep(1.1)
    assert turns.take("L", member, "k1", 1.0, new_token()).granted  # no longer renewed


def test_done_and_long_waiting_heads_are_skipped(
    redis_url: str, redis_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    turns = LeadTurns(RedisStore.from_url(redis_url), lease_ttl=1.0, order_timeout=0.2)
    _done, _lost, mine = turns.enqueue([("L", "k1", 1.0), ("L", "k2", 2.0), ("L", "k3", 3.0)])
    redis_client.set("cel_whatsapp:dedup:k1", "done")
    assert not turns.take("L", mine, "k3", 3.0, new_token()).granted  # k2 may still come
    time.sleep(0.3)
    turn = turns.take("L", mine, "k3", 3.0, new_token())
    assert turn.granted and turn.skipped == 1
    assert "skipped in that lead's order" in caplog.text


def test_an_entry_gone_is_queued_again_and_a_twin_never_blocks(
    turns: LeadTurns, redis_client: Any
) -> None:
    (member,) = turns.enqueue([("L", "k1", 5.0)])
    redis_client.delete("cel_whatsapp:jobqueue:L")
    turn = turns.take("L", member, "k1", 5.0, new_token())
    assert turn.granted and turn.member != member
    _twin, again = turns.enqueue([("M", "k9", 1.0), ("M", "k9", 1.0)])
    assert turns.take("M", again, "k9", 1.0, new_token()).granted


def test_a_worker_following_flasks_celery_pattern_answers_with_the_apps_settings(
    redis_url: str, redis_client: Any, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask's docs/patterns/celery.rst: tasks run inside an app context (``FlaskTask``)."""
    from celery import Task
    from flask import Flask

    from cel_whatsapp.celery import CeleryDispatcher

    flask_app = Flask("flask_pattern")
    flask_app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID="106540352242922",
        WHATSAPP_VERIFY_TOKEN="verify",
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with flask_app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery("flask_pattern", broker="memory://", task_cls=FlaskTask)
    connector = WhatsappConnector(
        assistant=lambda message: f"echo: {message.text}",
        read_receipts=False,
        store=RedisStore.from_url(redis_url),
        dispatch=CeleryDispatcher(celery_app),
    )
    connector.init_app(flask_app)
    published = _publish_to(connector, monkeypatch)
    assert post_webhook(flask_app.test_client(), _body(("hello", NOW))).status_code == 200
    (job,) = published.jobs
    # Outside an app context this connector has no settings at all (none in the environment).
    result = connector.dispatcher.task.apply(kwargs=job)  # type: ignore[attr-defined]
    assert result.get() == "answered"
    assert graph.sent_texts() == ["echo: hello"]


def test_the_scaling_out_example_publishes_and_answers(
    redis_url: str, redis_client: Any, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .doc_blocks import code_block, page

    path = page("scaling")
    block = code_block(path, "CeleryDispatcher(celery_app)")
    monkeypatch.setenv("REDIS_URL", redis_url)
    for key, value in {
        "WHATSAPP_TOKEN": TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "WHATSAPP_VERIFY_TOKEN": "verify",
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_BASE_URL": graph.base_url,
    }.items():
        monkeypatch.setenv(key, value)
    namespace: dict[str, Any] = {"__name__": "myproject"}
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    connector = namespace["whatsapp"]
    published = _publish_to(connector, monkeypatch)
    client = namespace["create_app"]().test_client()
    assert post_webhook(client, _body(("hello", NOW))).status_code == 200
    (job,) = published.jobs
    assert _run(connector, job) == "answered"  # as a worker would, with no app context
    assert graph.sent_texts() == ["You said: hello"]
