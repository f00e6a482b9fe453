"""The Flask adapter: the extension, its blueprint (webhook views) and its CLI.

This is the only part of the package (with the simulator and the testing
kit, which are Flask tools themselves) that imports Flask. It converts
requests into plain values for :mod:`cel_whatsapp.core` and keeps each app's
state in ``app.extensions``.
"""

from .connector import WhatsappConnector, whatsapp_blueprint

__all__ = ["WhatsappConnector", "whatsapp_blueprint"]
