"""gunicorn settings for the sample bot.

Run: ``gunicorn -c sample_app/gunicorn.conf.py "sample_app:create_app()"``
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Sync workers: each webhook is handled in its request. Two per core is plenty
# for a bot; raise it, or use threads, if your assistant is slow.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# Meta waits about 20 s for an answer before it redelivers; a worker stuck
# longer than that is killed and restarted.
timeout = 30
# On SIGTERM, give in-flight webhooks this long to finish their replies.
graceful_timeout = 30
accesslog = "-"
loglevel = "info"
