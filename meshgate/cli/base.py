"""What every ``meshgate`` subcommand shares: the one-line error, the subcommand entry,
reading an input file, and the two output forms (a JSON list, a padded table).

Errors the user can fix are raised as CommandError and printed as a single line,
``meshgate <command>: error: <what>, in <where>: <what to do>``, with exit code 2 (the
same code argparse uses for usage errors); a traceback would only bury the one fact
that matters.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROG = "meshgate"
USAGE_ERROR = 2


class CommandError(Exception):
    """A failure the user can fix; main() prints it as one line and exits with 2."""

    def __init__(self, what: str, where: str | None = None, todo: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.todo = todo

    def line(self, command: str) -> str:
        """The one-line message, e.g. ``meshgate routes: error: X, in F: do Y``."""
        text = f"{PROG} {command}: error: {self.what}"
        if self.where:
            text += f", in {self.where}"
        if self.todo:
            text += f": {self.todo}"
        return " ".join(text.splitlines())  # one line whatever the parts contained


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: its name, one-line help, argument setup and implementation."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    # True for commands that hand unknown arguments on (``meshgate run`` to pytest); they
    # arrive in ``args.passthrough``. Elsewhere an unknown argument is a usage error.
    passthrough: bool = False


def source_name(path: str) -> str:
    """How an input is named in messages (``-`` means standard input)."""
    return "<stdin>" if path == "-" else path


def read_input(path: str, what: str, todo: str) -> str:
    """Read a text file (``-`` for stdin), turning OS errors into one-line CommandErrors."""
    try:
        if path != "-":
            return Path(path).read_text(encoding="utf-8-sig")
        raw = getattr(sys.stdin, "buffer", None)  # bytes, so bad encodings are caught here
        return raw.read().decode("utf-8-sig") if raw is not None else sys.stdin.read()
    except FileNotFoundError:
        raise CommandError("file not found", path, f"check the path, or {todo}") from None
    except IsADirectoryError:
        raise CommandError("is a directory, not a file", path, f"pass the {what} file") from None
    except PermissionError:
        raise CommandError("permission denied", path, "make the file readable") from None
    except UnicodeDecodeError as error:
        raise CommandError(
            f"not UTF-8 text (byte {error.start})", source_name(path),
            f"pass the {what} as JSON or YAML",
        ) from None
    except OSError as error:
        raise CommandError(error.strerror or str(error), path, todo) from None


def print_json(items: Sequence[Any] | dict[str, Any]) -> None:
    """Machine output: JSON, indented so that diffs of saved outputs are readable."""
    doc = items if isinstance(items, dict) else list(items)
    print(json.dumps(doc, indent=2, default=str))


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Human output: columns padded to their widest cell, two spaces apart."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def repository_root() -> Path:
    """The checkout this meshgate runs from: it holds conftest.py, steps/ and features/."""
    return Path(__file__).resolve().parents[2]
