"""A streamed answer from any OpenAI-compatible chat endpoint, with ``requests`` only.

Configured by environment variables, the names OpenAI's own tools use:
``OPENAI_MODEL`` (required to turn it on), ``OPENAI_BASE_URL`` (default
``https://api.openai.com/v1``; e.g. ``http://localhost:11434/v1`` for Ollama)
and ``OPENAI_API_KEY`` (optional for local servers).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import requests

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
SYSTEM_PROMPT = (
    "You are the demo bot of cel_whatsapp, a Python library that puts assistants on "
    "WhatsApp. Answer in a few short sentences, in the user's language. WhatsApp "
    "formatting (*bold*, _italic_) is fine; no Markdown headings or tables."
)


@dataclass(frozen=True, slots=True)
class ChatModel:
    """An OpenAI-compatible ``/chat/completions`` endpoint, streamed."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    timeout: tuple[float, float] = (5.0, 60.0)
    system_prompt: str = SYSTEM_PROMPT

    def __repr__(self) -> str:
        return f"ChatModel(model={self.model!r}, base_url={self.base_url!r}, api_key=***)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChatModel | None:
        """The model the environment configures, or ``None`` when ``OPENAI_MODEL`` is unset."""
        env = os.environ if environ is None else environ
        model = env.get("OPENAI_MODEL", "").strip()
        if not model:
            return None
        base_url = (env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(model=model, base_url=base_url, api_key=env.get("OPENAI_API_KEY") or None)

    def stream(self, messages: list[dict[str, str]], session: requests.Session) -> Iterator[str]:
        """Yield the answer's text as the server streams it (server-sent events)."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": self.system_prompt}, *messages],
            "stream": True,
        }
        with session.post(
            f"{self.base_url}/chat/completions",
            json=body,
            headers=headers,
            stream=True,
            timeout=self.timeout,
        ) as response:
            if response.status_code != 200:
                raise requests.HTTPError(
                    f"the model endpoint answered HTTP {response.status_code}", response=response
                )
            for line in response.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                    delta = chunk["choices"][0].get("delta") or {}
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                    continue
                text = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(text, str) and text:
                    yield text


class Conversations:
    """The last few turns per user, so the model sees the conversation (bounded, thread-safe)."""

    def __init__(self, *, users: int = 500, turns: int = 12) -> None:
        self._users = users
        self._turns = turns
        self._history: OrderedDict[str, deque[dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, user: str, role: str, content: str) -> list[dict[str, str]]:
        """Record one turn; return the user's conversation so far."""
        with self._lock:
            turns = self._history.pop(user, None) or deque(maxlen=self._turns)
            turns.append({"role": role, "content": content})
            self._history[user] = turns
            while len(self._history) > self._users:
                self._history.popitem(last=False)
            return list(turns)
