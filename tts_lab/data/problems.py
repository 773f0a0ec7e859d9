"""Collecting bad data items as problems, reported once instead of crashing or dropping silently."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path


class DataError(ValueError):
    """Unusable data; the message names the file (and line, where there is one) and why."""


@dataclass(frozen=True)
class Problem:
    """One skipped item: where it was found and why it was skipped.

    ``reason`` is ``"<kind>"`` or ``"<kind>: <detail>"`` (e.g. ``"missing audio file: wavs/x.wav"``);
    counts group by kind.
    """

    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.reason}"


class ProblemReport:
    """Records skipped items of one dataset; ``strict=True`` turns the first problem into a DataError."""

    def __init__(self, name: str, strict: bool = False) -> None:
        self.name = name
        self.strict = strict
        self.problems: list[Problem] = []

    def add(self, path: str | Path, line: int | None, reason: str) -> None:
        """Record a skipped item (or raise DataError at once in strict mode)."""
        problem = Problem(str(path), line, reason)
        if self.strict:
            raise DataError(str(problem))
        self.problems.append(problem)

    def __len__(self) -> int:
        return len(self.problems)

    def counts_by_reason(self) -> dict[str, int]:
        """Number of problems per reason kind (text before the first ": "), most frequent first."""
        return dict(Counter(p.reason.split(": ", 1)[0] for p in self.problems).most_common())

    def summary(self, max_listed: int = 20) -> str:
        """One multi-line message: a count per reason, then up to ``max_listed`` problems."""
        if not self.problems:
            return f"{self.name}: no problems"
        counts = ", ".join(f"{reason}: {n}" for reason, n in self.counts_by_reason().items())
        lines = [f"{self.name}: skipped {len(self.problems)} items ({counts})"]
        lines += [f"  {p}" for p in self.problems[:max_listed]]
        hidden = len(self.problems) - max_listed
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)

    def to_json(self) -> str:
        """Serialise name, strictness and problems (e.g. to store beside a feature cache)."""
        return json.dumps(
            {"name": self.name, "strict": self.strict, "problems": [asdict(p) for p in self.problems]}
        )

    @classmethod
    def from_json(cls, text: str) -> ProblemReport:
        """Rebuild a report written by :meth:`to_json` (problems are restored, not re-raised)."""
        data = json.loads(text)
        report = cls(data["name"], strict=data.get("strict", False))
        report.problems = [Problem(p["path"], p["line"], p["reason"]) for p in data["problems"]]
        return report
