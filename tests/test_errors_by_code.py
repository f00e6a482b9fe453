"""Graph API errors come out as the subclass Meta's numeric code names, from one table."""

from __future__ import annotations

import pytest

import cel_whatsapp
from cel_whatsapp import (
    AuthError,
    GraphAPIError,
    OutsideWindowError,
    RateLimitError,
    RecipientError,
    TemplateError,
)
from cel_whatsapp.core import retry
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.core.retry import Verdict, classify
from cel_whatsapp.errors import META_CODE_RANGES, META_CODES, Transience, code_info
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import TOKEN, MakeConnector, make_app

EXPECTED = [
    (0, AuthError),
    (10, AuthError),
    (190, AuthError),
    (200, AuthError),
    (250, AuthError),
    (299, AuthError),
    (4, RateLimitError),
    (80007, RateLimitError),
    (130429, RateLimitError),
    (131048, RateLimitError),
    (131056, RateLimitError),
    (131047, OutsideWindowError),
    (131026, RecipientError),
    (131030, RecipientError),
    (131021, RecipientError),
    (132000, TemplateError),
    (132001, TemplateError),
    (132016, TemplateError),
    (100, GraphAPIError),
    (131000, GraphAPIError),
    (300, GraphAPIError),
    (132017, GraphAPIError),
    (999_999, GraphAPIError),
]


@pytest.mark.parametrize(("code", "expected"), EXPECTED)
def test_a_send_raises_the_class_of_metas_code(
    graph: FakeGraphAPI, code: int, expected: type[GraphAPIError]
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    graph.fail_next(status=400, code=code, message="Scripted", subcode=2494010)
    with pytest.raises(GraphAPIError) as caught:
        client.send_message(
            "106540352242922",
            {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}},
        )
    error = caught.value
    assert type(error) is expected
    assert (error.code, error.error_subcode, error.http_status) == (code, 2494010, 400)
    assert error.fbtrace_id == "AFakeTrace"
    assert "Scripted" in error.message


def test_every_class_is_exported_and_a_graph_api_error() -> None:
    for name in ("AuthError", "RateLimitError", "OutsideWindowError", "RecipientError",
                 "TemplateError", "GraphAPIError", "StoreError"):  # fmt: skip
        assert name in cel_whatsapp.__all__
        assert getattr(cel_whatsapp, name)
    for info in [*META_CODES.values(), *(entry for _, _, entry in META_CODE_RANGES)]:
        assert issubclass(info.error_class, GraphAPIError)


_EXPECTED_VERDICT = {
    Transience.TRANSIENT: Verdict.RETRY,
    Transience.RECIPIENT: Verdict.RECIPIENT,
    Transience.PERMANENT: Verdict.PERMANENT,
}


@pytest.mark.parametrize("status", [400, 500])
def test_the_retry_policy_reads_the_same_table(status: int) -> None:
    codes = [*META_CODES, *(first for first, _, _ in META_CODE_RANGES)]
    for code in codes:
        info = code_info(code)
        assert info is not None
        error = GraphAPIError("x", code=code, http_status=status)
        assert classify(error) is _EXPECTED_VERDICT[info.transience], code


def test_codes_the_table_does_not_know_fall_back_on_the_http_status() -> None:
    assert code_info(424242) is None
    assert classify(GraphAPIError("x", code=424242, http_status=503)) is Verdict.RETRY
    assert classify(GraphAPIError("x", code=424242, http_status=400)) is Verdict.PERMANENT


def test_no_second_list_of_codes_in_the_retry_module() -> None:
    assert not hasattr(retry, "TRANSIENT_CODES")
    assert not hasattr(retry, "PERMANENT_CODES")


def test_outside_the_window_keeps_its_class_with_the_friendlier_message(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    connector = make_connector()
    app = make_app(connector)
    graph.fail_next(status=400, code=131047, message="Re-engagement message")
    with app.app_context(), pytest.raises(OutsideWindowError) as caught:
        connector.send("+16505551234", "hello")
    assert caught.value.code == 131047
    assert "template" in str(caught.value)
