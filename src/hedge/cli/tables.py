"""Tables that fit the terminal: ids and numbers are never cut, long text wraps, and when the
terminal is too narrow for every column the least useful ones are left out (and the table says so).

Every table the state commands and ``hedge top`` print goes through :func:`fit_table`. Each column
is one of three kinds:

- ``id``: something a user copies (a key id, a deployment, a model name): never wrapped, never cut;
- ``number``: never wrapped, never cut (a cut number is a wrong number);
- ``text``: wraps at spaces, folds a word only when it must, and is squeezed down to ``squeeze``
  characters before any column is dropped.

Columns with a ``drop`` rank are left out, lowest rank first, until the rest fit. If even the
columns that are never dropped do not fit (a terminal far narrower than 80 columns), lines run
past the edge rather than cut an id or a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Kind = Literal["id", "number", "text"]
Cell = str | Text

PADDING = (0, 1, 0, 0)
"""One space right of each cell; with the box's one-character divider, columns are two apart."""


@dataclass(frozen=True)
class Col:
    header: str
    kind: Kind = "text"
    drop: int | None = None
    """Rank in which the column is left out when the terminal is narrow (1 first); None: always shown."""
    justify: Literal["left", "right", "center"] = "left"
    squeeze: int = 10
    """A text column is squeezed down to this many characters (or its longest word) before dropping."""


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _widest_line(text: str) -> int:
    return max((cell_len(line) for line in text.split("\n")), default=0)


def _widest_word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def _need(col: Col, cells: Sequence[str]) -> int:
    """The narrowest the column may be, content only (no padding)."""
    texts = [col.header, *cells]
    if col.kind == "text":
        return max(1, min(max(_widest_word(t) for t in texts), col.squeeze))
    return max(1, *(_widest_line(t) for t in texts))


def _overhead(table: Table, columns: int) -> int:
    """Characters a table of ``columns`` columns spends on padding and borders (as rich counts them)."""
    _, right, _, left = table.padding
    borders = (2 if table.box and table.show_edge else 0) + (columns - 1 if table.box else 0)
    return columns * (left + right) + borders


def fit_table(
    width: int,
    columns: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    *,
    footer: Sequence[Cell] | None = None,
    **table_args: Any,
) -> Table:
    """A table of ``rows`` with as many of ``columns`` as fit ``width``; its caption names any left out.

    ``table_args`` go to :class:`rich.table.Table` (title, box, ...); the defaults are a light box,
    no outer edge and one space of padding, so the content gets as much of the width as possible.
    """
    options: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "padding": PADDING}
    options.update(table_args)
    options["expand"] = False
    if footer is not None:
        options["show_footer"] = True
    probe = Table(**options)
    plain = [[_plain(c) for c in row] for row in rows]
    foot = [_plain(c) for c in footer] if footer is not None else None
    needs = []
    for i, col in enumerate(columns):
        cells = [row[i] for row in plain] + ([foot[i]] if foot is not None else [])
        needs.append(_need(col, cells))
    shown = list(range(len(columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(columns) if c.drop is not None)
    while sum(needs[i] for i in shown) + _overhead(probe, len(shown)) > width and droppable:
        shown.remove(droppable.pop(0)[1])

    table = Table(**options)
    for i in shown:
        col = columns[i]
        fixed = col.kind != "text"
        table.add_column(
            col.header,
            footer=(footer[i] if footer is not None else ""),
            justify=col.justify,
            no_wrap=fixed,
            min_width=needs[i] if fixed else None,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    hidden = [columns[i].header.replace("\n", " ") for i in range(len(columns)) if i not in shown]
    if hidden and table.caption is None:
        table.caption = f"not shown at {width} columns: {', '.join(hidden)} (--format json has all)"
        table.caption_justify = "left"
    return table
