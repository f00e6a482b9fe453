"""Talk to the simulator hub over HTTP, from any process of the web server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from ..errors import CelWhatsappError
from .hub import SIMULATOR_PATH
from .shared import HubLink

logger = logging.getLogger(__name__)


class HubUnavailableError(CelWhatsappError):
    """The hub could not be reached, even after trying to start a new one."""


class HubClient:
    """The chat page's backend calls, forwarded to the hub.

    A refused connection means the process hosting the hub is gone: the link
    revives it (see :mod:`cel_whatsapp.simulator.shared`) and the call is
    tried once more.
    """

    def __init__(self, link: HubLink, *, timeout: tuple[float, float] = (2.0, 30.0)) -> None:
        self.link = link
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False

    def __repr__(self) -> str:
        return f"HubClient({self.link!r})"

    def request(
        self, method: str, route: str, *, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        """One call to ``/_simulator/{route}``; raises :class:`HubUnavailableError`."""
        kwargs.setdefault("timeout", self.timeout)
        extra_headers = kwargs.pop("headers", None) or {}
        for attempt in (1, 2):
            settings = self.link.settings
            headers = {"Authorization": f"Bearer {settings.token}", **extra_headers}
            try:
                return self._session.request(
                    method,
                    f"{settings.root_url}{SIMULATOR_PATH}/{route}",
                    headers=headers,
                    stream=stream,
                    **kwargs,
                )
            except requests.ConnectionError as exc:
                if attempt == 2 or not self.link.revive():
                    raise HubUnavailableError(f"the simulator hub does not answer ({exc})") from exc
                logger.info("simulator: the hub is back at %s", self.link.settings.root_url)
            except requests.Timeout as exc:
                raise HubUnavailableError("the simulator hub did not answer in time") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def post_json(self, route: str, data: Mapping[str, Any]) -> requests.Response:
        return self.request("POST", route, json=dict(data))
