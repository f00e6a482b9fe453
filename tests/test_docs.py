"""The README stays a short front page, and the docs site holds together.

The docs build itself (``python -m sphinx -W``, warnings as errors) runs in
``.ci/run``; these checks need no Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

import cel_whatsapp
from cel_whatsapp.testing import WhatsappTestClient

from .doc_blocks import DOCS, README, ROOT, code_blocks, page

#: The README is the front page (and the package's long description): at most this long.
README_MAX_LINES = 250


def test_the_readme_is_a_short_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.rst has {len(lines)} lines"


def test_every_docs_link_of_the_readme_names_a_page_that_exists() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"<([^<>\s]+)>`_", text)
    relative = [target for target in targets if "://" not in target]
    assert relative, "the README links into the docs"
    for target in relative:
        assert target.startswith("docs/"), target
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"
    assert {"docs/quickstart.rst", "docs/api.rst"} <= set(relative)


def test_every_page_is_in_the_index_toctree() -> None:
    index = page("index").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   ([\w-]+)$", index, flags=re.M))
    pages = {path.stem for path in DOCS.glob("*.rst")} - {"index"}
    assert listed == pages


def test_the_api_reference_names_every_public_name() -> None:
    api = page("api").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:class|function|exception):: (\w+)$", api, re.M))
    public = set(cel_whatsapp.__all__) - {"__version__"}
    assert public <= documented, sorted(public - documented)
    assert documented <= public, sorted(documented - public)


def test_the_index_example_answers(whatsapp: WhatsappTestClient) -> None:
    # The fixture exports WHATSAPP_* settings, which the example reads from the environment.
    [block] = code_blocks(page("index"))
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, "index.rst", "exec"), namespace)  # noqa: S102 - our own docs
    app = namespace["app"]
    assert isinstance(app, Flask)
    assert whatsapp.send_text(app, "hello").status_code == 200
    assert whatsapp.sent_texts() == ["You said: hello"]
