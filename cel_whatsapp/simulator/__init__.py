"""A WhatsApp-like chat page for trying a bot without a Meta account.

:class:`Simulator` mounts the page on a Flask app and points the app's
``WHATSAPP_*`` settings at :class:`SimulatorHub`, a local stand-in for Meta:
a fake Cloud API that also delivers the simulated user's messages to the bot
as signed webhooks. Everything between the page and the bot goes through
the real webhook, signature check, parsing, stream modes and Graph API client.
"""

from __future__ import annotations

from .extension import Simulator
from .hub import SimulatorHub
from .shared import HubLink, HubSettings

__all__ = ["HubLink", "HubSettings", "Simulator", "SimulatorHub"]
