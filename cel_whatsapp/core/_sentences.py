"""Where text may be cut: sentence boundaries and WhatsApp's length limit.

Pure functions on strings; used by the stream modes and by the 4096-character
splitter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from ..config import TEXT_LIMIT

# Words that end with a period without ending a sentence (compared lower-case,
# without their final period).
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc",
        "e.g", "i.e", "a.m", "p.m", "no", "nos", "fig", "figs", "approx", "inc",
        "ltd", "co", "corp", "dept", "est", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec", "cf", "al", "ca",
        "op", "vol", "p", "pp", "ed", "eds", "gen", "gov", "sen", "rep", "lt",
        "col", "capt", "sgt", "u.s", "u.k", "ph.d", "min", "max", "tel",
    }
)  # fmt: skip

# A run of sentence-ending marks, any closing quotes or brackets, then the
# whitespace that confirms the sentence ended; or a bare line break.
_CANDIDATE = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
_FENCE = "```"


def _is_boundary(text: str, start: int, end: int, final: bool) -> bool | None:
    """Decide whether the candidate ``text[start:end]`` ends a sentence.

    Returns ``None`` when it cannot be decided yet (more text may change it).
    """
    mark = text[start]
    if mark == "\n":
        return True
    if mark != ".":
        return True
    # The whitespace-free token the period ends ("Dr", "e.g", "3", a URL).
    token_start = start
    while token_start > 0 and not text[token_start - 1].isspace():
        token_start -= 1
    token = text[token_start:start].lstrip("(['\"\u201c\u2018")
    if token.lower() in ABBREVIATIONS:
        return False
    if len(token) == 1 and token.isupper():  # an initial: "J. R. R. Tolkien"
        return False
    if token.isdigit() and (token_start == 0 or text[token_start - 1] == "\n"):
        return False  # "2. Second" at the start of a line is a list marker
    # Look at what follows the whitespace: a lower-case letter means the period
    # did not end a sentence ("approx. ten", "v2. then").
    following = _NEXT_VISIBLE.match(text, end)
    if following is None:
        return True if final else None
    return not following.group(1).islower()


def boundaries(text: str, *, final: bool = True) -> Iterator[int]:
    """Yield the indices just past each complete sentence or line in ``text``.

    With ``final=False`` the text may still grow, so an ending that depends on
    what comes next is not reported yet, and scanning stops there. Nothing is
    cut inside a fenced code block (between ``````` marks).
    """
    in_fence = False
    fence_scan = 0
    for match in _CANDIDATE.finditer(text):
        start, end = match.span()
        in_fence ^= text.count(_FENCE, fence_scan, start) % 2 == 1
        fence_scan = start
        if in_fence:
            continue
        decided = _is_boundary(text, start, end, final)
        if decided is None:
            return
        if decided:
            yield end


def _spans(text: str, cuts: Iterator[int] | list[int]) -> list[str]:
    pieces: list[str] = []
    previous = 0
    for cut in cuts:
        if cut > previous:
            pieces.append(text[previous:cut])
            previous = cut
    if previous < len(text):
        pieces.append(text[previous:])
    return pieces


def _paragraphs(text: str) -> list[str]:
    return _spans(text, [m.end() for m in re.finditer(r"\n[ \t]*\n\s*", text)])


def _sentences(text: str) -> list[str]:
    return _spans(text, boundaries(text, final=True))


def _words(text: str) -> list[str]:
    return _spans(text, [m.start() for m in re.finditer(r"(?<=\s)\S", text)])


def _characters(text: str, limit: int) -> list[str]:
    return [text[i : i + limit] for i in range(0, len(text), limit)]


_LEVELS: tuple[Callable[[str], list[str]], ...] = (_paragraphs, _sentences, _words)


def _pack(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return _characters(text, limit)
    chunks: list[str] = []
    current = ""
    for unit in _LEVELS[level](text):
        if len(current) + len(unit.rstrip()) <= limit:
            current += unit
            continue
        if current.strip():
            chunks.append(current)
        if len(unit.rstrip()) > limit:
            *head, current = _pack(unit, limit, level + 1)
            chunks.extend(head)
        else:
            current = unit
    if current.strip():
        chunks.append(current)
    return chunks


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut ``text`` into stripped pieces of at most ``limit`` characters.

    Cuts fall between paragraphs if possible, else between sentences, else
    between words; a single word longer than ``limit`` is the only thing ever
    cut in the middle. Whitespace-only input gives ``[]``.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces = (chunk.strip() for chunk in _pack(text, limit, 0))
    return [piece for piece in pieces if piece]
