"""The code blocks of README.rst and the docs pages, for tests that run them as written.

A block is a ``.. code-block:: LANGUAGE`` directive (at any indentation, in a
list item too) and the lines indented under it, dedented. A test picks the
block holding a marker it knows, so an example that moves within its page is
still found, and one that disappears or appears twice fails the test.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"

_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: (?P<language>\S+)\s*$")
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+])\1{2,}$")


def page(name: str) -> Path:
    """A docs page by name (``"quickstart"`` is ``docs/quickstart.rst``); it must exist."""
    path = DOCS / f"{name}.rst"
    assert path.is_file(), f"no docs page {path}"
    return path


def code_blocks(path: Path, language: str = "python", *, under: str | None = None) -> list[str]:
    """Every ``language`` block of ``path``, dedented, in order.

    ``under``: only the blocks of the section with that title (up to the next
    title of any level).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    if under is not None:
        lines = _section(lines, under, path)
    blocks = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if match is None or match["language"] != language:
            continue
        indent = len(match["indent"])
        body = []
        while index < len(lines) and (
            not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
        ):
            body.append(lines[index])
            index += 1
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def code_block(path: Path, marker: str, language: str = "python") -> str:
    """The one ``language`` block of ``path`` that holds ``marker``."""
    found = [block for block in code_blocks(path, language) if marker in block]
    assert len(found) == 1, f"{len(found)} {language} blocks of {path.name} hold {marker!r}"
    return found[0]


def _is_title(lines: list[str], index: int) -> bool:
    """Whether ``lines[index]`` is a title: text underlined with as many adornment marks."""
    return (
        index + 1 < len(lines)
        and bool(lines[index].strip())
        and _ADORNMENT.match(lines[index + 1]) is not None
        and len(lines[index + 1]) == len(lines[index])
    )


def _section(lines: list[str], title: str, path: Path) -> list[str]:
    starts = [i for i in range(len(lines)) if lines[i] == title and _is_title(lines, i)]
    assert len(starts) == 1, f"{len(starts)} sections titled {title!r} in {path.name}"
    start = starts[0] + 2
    end = next((i for i in range(start, len(lines)) if _is_title(lines, i)), len(lines))
    return lines[start:end]
