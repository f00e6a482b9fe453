"""The README's code examples run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.rst"


def _python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text)
    return [re.sub(r"^   ", "", block, flags=re.M) for block in blocks]


def test_testing_kit_example_passes() -> None:
    [block] = [b for b in _python_blocks() if "def test_my_bot_answers" in b]
    assert "assert graph.sent_texts()" in block  # the example checks the reply itself
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(block, "README.rst", "exec"), namespace)  # noqa: S102 - our own README
    namespace["test_my_bot_answers"]()


def test_quickstart_registers_the_webhook() -> None:
    block = _python_blocks()[0]
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(block, "README.rst", "exec"), namespace)  # noqa: S102 - our own README
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
