"""``python -m sample_app``: run the demo bot on http://127.0.0.1:5000/ (``PORT``, ``HOST``)."""

from __future__ import annotations

import logging
import os

from cel_whatsapp.config import BASE_URL_KEY
from cel_whatsapp.simulator.extension import DEFAULT_USER_PHONE

from . import create_app, wants_simulator


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    app = create_app()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only a display name
    if wants_simulator():
        log = logging.getLogger("sample_app")
        log.info("open http://%s:%d/ in a browser to chat with the bot", shown, port)
        # The CLI loads the app in a process of its own: the address joins this chat.
        log.info(
            "send into that chat from a terminal: flask --app sample_app whatsapp send "
            "--base-url %s --to %s hello",
            app.config[BASE_URL_KEY],
            DEFAULT_USER_PHONE,
        )
    else:
        logging.getLogger("sample_app").info(
            "webhook at http://%s:%d/whatsapp (put it behind HTTPS for Meta)", shown, port
        )
    # threaded: the simulator page long-polls, and each webhook gets its own thread.
    app.run(host=host, port=port, threaded=True)


if __name__ == "__main__":
    main()
