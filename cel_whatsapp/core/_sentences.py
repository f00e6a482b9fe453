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
_SPACE = re.compile(r"\s")
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


def _endings(text: str, pos: int, in_fence: bool, final: bool) -> Iterator[tuple[int, int, bool]]:
    """Yield ``(start, end, is_boundary)`` for each candidate ending in ``text[pos:]``.

    ``in_fence`` says whether ``pos`` is inside a fenced code block (``pos``
    must not be inside a backtick run). Candidates inside fences are skipped.
    With ``final=False`` an ending that depends on text still to come stops
    the walk: it is yielded with ``end == -1``.
    """
    fence_scan = pos
    for match in _CANDIDATE.finditer(text, pos):
        start, end = match.span()
        # Backticks never touch a candidate (it starts with a mark or a line
        # break), so counting between candidates counts every fence once.
        in_fence ^= text.count(_FENCE, fence_scan, start) % 2 == 1
        fence_scan = start
        if in_fence:
            continue
        decided = _is_boundary(text, start, end, final)
        if decided is None:
            yield start, -1, False
            return
        yield start, end, decided


def boundaries(text: str, *, final: bool = True) -> Iterator[int]:
    """Yield the indices just past each complete sentence or line in ``text``.

    With ``final=False`` the text may still grow, so an ending that depends on
    what comes next is not reported yet, and scanning stops there. Nothing is
    cut inside a fenced code block (between ``````` marks).
    """
    for _start, end, is_boundary in _endings(text, 0, False, final):
        if end < 0:
            return
        if is_boundary:
            yield end


class SentenceScanner:
    """``boundaries(text, final=False)`` for text that arrives in chunks, in linear time.

    :meth:`feed` takes the next chunk and returns the index just past the
    last complete sentence of all the text fed so far (0 while there is
    none), exactly as ``boundaries`` would on the whole text. Text already
    decided is never looked at again: only the word in progress (or an
    ending waiting for its next word) is carried over, and a chunk that
    cannot complete an ending (no whitespace, or only whitespace while an
    ending waits) is only stored.
    """

    __slots__ = ("_base", "_carry", "_fence", "_line_start", "_rescan", "_waiting", "end")

    def __init__(self, text: str = "") -> None:
        self.reset(text)

    def reset(self, text: str = "") -> None:
        """Start over on ``text`` (looked at on the next :meth:`feed`)."""
        #: Index just past the last complete sentence (0: none yet).
        self.end = 0
        # Where the carried text starts: a word start, or the start of the
        # token before an ending that waits for what follows it.
        self._base = 0
        self._carry: list[str] = [text] if text else []
        self._fence = False  # whether _base is inside a fenced code block
        self._line_start = True  # _base is the start of the text or of a line
        self._waiting = False
        self._rescan = bool(text)

    def consume(self, index: int) -> None:
        """Forget the first ``index`` characters (at most :attr:`end`): indices shift."""
        self._base -= index
        self.end -= index

    def feed(self, chunk: str) -> int:
        """Add ``chunk``; return the index just past the last complete sentence."""
        # A chunk that cannot change the answer is only stored: while an ending
        # waits, whitespace does not bring its next word; otherwise a chunk
        # without whitespace cannot complete an ending.
        if not self._rescan and (
            chunk.isspace() if self._waiting else _SPACE.search(chunk) is None
        ):
            self._carry.append(chunk)
            return self.end
        self._rescan = False
        # One whitespace character stands for what came before the carried
        # text: it ends the previous word and says whether a line starts here.
        window = ("\n" if self._line_start else " ") + "".join(self._carry) + chunk
        offset = self._base - 1
        resume = -1
        for start, end, is_boundary in _endings(window, 1, self._fence, final=False):
            if end < 0:
                resume = start
                break
            if is_boundary:
                self.end = offset + end
        self._waiting = resume >= 0
        if self._waiting:
            while not window[resume - 1].isspace():  # back to the start of its token
                resume -= 1
        else:
            resume = _word_start(window)
        self._fence ^= window.count(_FENCE, 1, resume) % 2 == 1
        self._line_start = window[resume - 1] == "\n"
        self._base = offset + resume
        self._carry = [window[resume:]] if resume < len(window) else []
        return self.end


def _word_start(text: str) -> int:
    """The index just past the last whitespace character of ``text`` (which has one)."""
    if text[-1].isspace():
        return len(text)
    return len(text) - len(text.rsplit(maxsplit=1)[-1])


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
    if len(text) <= limit:
        # What _pack gives a text that fits (most answers), without its calls.
        text = text.strip()
        return [text] if text else []
    pieces = (chunk.strip() for chunk in _pack(text, limit, 0))
    return [piece for piece in pieces if piece]
