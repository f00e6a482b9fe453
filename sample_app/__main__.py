"""``python -m sample_app``: run the demo bot on http://127.0.0.1:5000/ (PORT to change)."""

from __future__ import annotations

import logging
import os

from . import create_app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    port = int(os.environ.get("PORT", "5000"))
    app = create_app()
    logging.getLogger("sample_app").info("open http://127.0.0.1:%d/ to chat with the bot", port)
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=port, threaded=True)


if __name__ == "__main__":
    main()
