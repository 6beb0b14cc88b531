"""What every benchmark does with its Markdown report: print it and write it to its results file."""

from __future__ import annotations

from pathlib import Path


def publish(report: str, output: Path) -> None:
    print(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
