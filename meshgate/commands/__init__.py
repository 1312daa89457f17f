"""CLI command bodies: thin, pure functions over a `RegistryStore` that return printable text.

`meshgate/__main__.py` builds the argparse tree with each module's `add_parser(subparsers)` (`audit`,
`keys`), opens the store and calls `args.handler(args, store, config)`, which prints and returns the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Protocol


class SubParsers(Protocol):
    """What `ArgumentParser.add_subparsers()` returns, as far as the commands use it."""

    def add_parser(
        self, name: str, *, help: str | None = ..., description: str | None = ...
    ) -> argparse.ArgumentParser: ...


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [headers, *rows]
    ]
    return "\n".join(lines)


__all__ = ["SubParsers", "format_table"]
