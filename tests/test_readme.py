"""The README's and the quickstart page's code examples run as written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .doc_blocks import README, code_block, code_blocks, page

QUICKSTARTS = [README, page("quickstart")]


def test_testing_kit_example_passes() -> None:
    path = page("testing")
    block = code_block(path, "def test_my_bot_answers")
    assert "assert graph.sent_texts()" in block  # the example checks the reply itself
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    namespace["test_my_bot_answers"]()


@pytest.mark.parametrize("path", QUICKSTARTS, ids=lambda path: path.name)
def test_quickstart_registers_the_webhook(path: Path) -> None:
    block = code_blocks(path)[0]  # the first example a reader meets
    assert "def create_app() -> Flask:" in block
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own docs
    client = namespace["create_app"]().test_client()
    response = client.get(
        "/whatsapp",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": "pick-any-secret",
            "hub.challenge": "9",
        },
    )
    assert response.get_data(as_text=True) == "9"


def test_the_readme_quickstart_is_the_quickstart_page_s() -> None:
    marker = "def create_app() -> Flask:"
    assert code_block(README, marker) == code_block(page("quickstart"), marker)
