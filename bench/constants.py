"""Credentials and addresses shared by the bench runner and the apps it serves.

Stdlib only: the bare floor app imports this module and nothing else of ours.
"""

from __future__ import annotations

TOKEN = "EAAG-bench-token"  # noqa: S105 - a fake, for the local fake API
APP_SECRET = "bench-app-secret"  # noqa: S105 - a fake
VERIFY_TOKEN = "bench-verify-token"  # noqa: S105 - a fake
PHONE_NUMBER_ID = "106540352242922"
WEBHOOK_PATH = "/whatsapp"
API_VERSION = "v25.0"
#: The reference library of the load rows, as setup.cfg's ``bench`` extra pins it.
PYWA_REQUIREMENT = "pywa==4.5.0"
