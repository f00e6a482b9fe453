"""Sphinx configuration for the cel_whatsapp documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``.ci/run`` does, warnings as errors). Nothing here reaches the network.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

project = "cel_whatsapp"
author = "cel_whatsapp developers"
copyright = "cel_whatsapp developers"  # noqa: A001 - Sphinx's own setting name

try:
    release = version("cel_whatsapp")
except PackageNotFoundError:  # a checkout on sys.path, not installed
    release = "0.1.0"
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# The package's docstrings are plain reST (no Google or NumPy sections).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Optional dependencies the API pages would otherwise need installed.
autodoc_mock_imports: list[str] = []

exclude_patterns = ["_build"]
default_role = None
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "Put any assistant on WhatsApp from a Flask site",
    "fixed_sidebar": True,
    # The pages hold wide tables (settings, benchmark runs).
    "page_width": "1200px",
    "body_max_width": "none",
}
html_title = f"cel_whatsapp {release}"
html_static_path: list[str] = []
