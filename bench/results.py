"""Result records and the text tables the bench prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """A target beside a figure; ``passed`` is ``None`` when not judged (smoke runs)."""

    text: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


@dataclass
class LoadRow:
    """One gunicorn scenario."""

    name: str
    server: str
    rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    ratio: float | None = None
    rss_mib: float | None = None
    requests: int = 0
    errors: int = 0
    replies: int | None = None
    targets: list[Target] = field(default_factory=list)
    note: str = ""


@dataclass
class StreamRow:
    """Time to first message for one stream mode."""

    mode: str
    answers: int
    after_sentence_ms: tuple[float, float] | None  # median, max
    from_webhook_ms: float | None
    messages: int
    targets: list[Target] = field(default_factory=list)
    note: str = ""


@dataclass
class ParseRow:
    """Parse cost of one payload."""

    payload: str
    messages: int
    parse_us: float
    with_json_us: float
    targets: list[Target] = field(default_factory=list)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _targets(targets: Sequence[Target]) -> tuple[str, str]:
    if not targets:
        return "", ""
    return "; ".join(t.text for t in targets), " ".join(t.verdict for t in targets)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """A plain-text table; columns in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def load_table(rows: Sequence[LoadRow]) -> str:
    headers = [
        "scenario",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU us/webhook",
        "x floor",
        "peak RSS MiB",
        "replies",
        "target",
        "result",
    ]
    cells = []
    for row in rows:
        target_text, verdicts = _targets(row.targets)
        if row.note and not row.requests:
            target_text = row.note
        cells.append(
            [
                row.name,
                row.server,
                _fmt(row.rate, ".0f"),
                _fmt(row.p50_ms, ".1f"),
                _fmt(row.p99_ms, ".1f"),
                _fmt(row.cpu_us, ".0f"),
                _fmt(row.ratio, ".2f"),
                _fmt(row.rss_mib, ".1f"),
                "-" if row.replies is None else str(row.replies),
                target_text,
                verdicts,
            ]
        )
    notes = [f"  {row.name.strip()}: {row.note}" for row in rows if row.note and row.requests]
    text = table(headers, cells, right={2, 3, 4, 5, 6, 7, 8})
    return text + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def stream_table(rows: Sequence[StreamRow]) -> str:
    headers = [
        "stream mode",
        "answers",
        "messages",
        "1st msg after its sentence ended, ms (median/max)",
        "webhook -> 1st msg, ms",
        "target",
        "result",
    ]
    cells = []
    for row in rows:
        target_text, verdicts = _targets(row.targets)
        after = (
            "-"
            if row.after_sentence_ms is None
            else f"{row.after_sentence_ms[0]:.1f} / {row.after_sentence_ms[1]:.1f}"
        )
        cells.append(
            [
                row.mode,
                str(row.answers),
                str(row.messages),
                after,
                _fmt(row.from_webhook_ms, ".0f"),
                target_text or row.note,
                verdicts,
            ]
        )
    return table(headers, cells, right={1, 2, 3, 4})


def parse_table(rows: Sequence[ParseRow]) -> str:
    headers = [
        "payload",
        "messages",
        "parse + model us",
        "with JSON decode us",
        "us per message",
        "target",
        "result",
    ]
    cells = []
    for row in rows:
        target_text, verdicts = _targets(row.targets)
        cells.append(
            [
                row.payload,
                str(row.messages),
                f"{row.parse_us:.1f}",
                f"{row.with_json_us:.1f}",
                f"{row.with_json_us / row.messages:.1f}" if row.messages else "-",
                target_text,
                verdicts,
            ]
        )
    return table(headers, cells, right={1, 2, 3, 4})
