"""The demo assistant: streams a few sentences so the stream modes show."""

from __future__ import annotations

import time
from collections.abc import Iterator

from cel_whatsapp import Message


def demo_assistant(message: Message) -> Iterator[str] | str | None:
    """Answer a text with a short streamed reply; say what arrived otherwise."""
    if message.text is None:
        return f"I got a {message.type} message. I can only read text for now."
    name = message.lead.name or "there"
    words = len(message.text.split())
    return _stream(name, message.text, words)


def _stream(name: str, text: str, words: int) -> Iterator[str]:
    # Chunks arrive the way a language model produces them: a few words at a time.
    for chunk in (
        f"Hi {name}! ",
        f"You wrote {words} word{'s' if words != 1 else ''}. ",
        "Here it is back: ",
        f"{text}\n",
        "Each sentence of this answer ",
        "arrives as its own WhatsApp message.",
    ):
        time.sleep(0.05)
        yield chunk
