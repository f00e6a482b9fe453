"""Benchmarks of cel_whatsapp: ``python -m bench`` (``--smoke`` for a quick check).

Measures what the connector costs on a webhook's path against a bare Flask
view, under a real gunicorn driven by ``wrk`` (or a Python fallback), with a
lean fake Graph API on 127.0.0.1; see ``python -m bench --help``.
``python -m bench.hostile_cost`` measures the CPU time and log lines of the
worst bodies an attacker can fit under the size and item caps.
"""
