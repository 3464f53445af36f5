"""How the CLI renders for people: tables that show user strings literally and never cut ids.

Rich reads ``[...]`` in a string as markup, so an alert named ``Disk [/var] full`` or a backlog
title starting ``[opsloop]`` would be mangled or raise ``MarkupError``. :class:`Table` takes every
``str`` cell as plain text (style with :class:`rich.text.Text` where a colour is wanted), and
folds long cells instead of cutting them with an ellipsis, so an id can always be copied. Every
CLI table is built from this class (``tests/cli/test_markup.py`` checks it); text interpolated
into ``console.print`` goes through :func:`escape`.
"""

from __future__ import annotations

from typing import Any

from rich import table as rich_table
from rich.console import Console, RenderableType
from rich.markup import escape as _escape
from rich.text import Text

__all__ = ["Table", "escape", "plain", "table_console"]


def escape(value: object) -> str:
    """A value as markup-safe text for ``console.print`` (``[`` that could open a tag escaped).

    >>> escape("Disk [/var] full")
    'Disk \\\\[/var] full'
    """
    return _escape(str(value))


def plain(value: object, style: str = "") -> Text:
    """A cell shown literally, optionally styled (a status colour).

    >>> plain("[bold]", "red").plain
    '[bold]'
    """
    return Text(str(value), style=style)


class Table(rich_table.Table):
    """A rich table whose ``str`` cells are literal text and whose columns fold, never cut.

    >>> from io import StringIO
    >>> out = Console(file=StringIO(), width=60)
    >>> t = Table("id", "title")
    >>> t.add_row("INC-1", "[bold]Disk [/var] full[/]")
    >>> out.print(t)
    >>> "[bold]Disk [/var] full[/]" in out.file.getvalue()
    True
    """

    def __init__(self, *headers: str | rich_table.Column, **kwargs: Any) -> None:
        super().__init__(*headers, **kwargs)
        for column in self.columns:
            _fold(column)

    def add_column(self, header: RenderableType = "", *args: Any, **kwargs: Any) -> None:
        """Add a column that folds long cells over lines (an id column keeps at least 8 characters)."""
        kwargs.setdefault("overflow", "fold")
        super().add_column(plain(header) if isinstance(header, str) else header, *args, **kwargs)
        _fold(self.columns[-1])

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        """Add a row; ``str`` cells are shown as they are, whatever brackets they hold."""
        cells = [plain(c) if isinstance(c, str) else c for c in renderables]
        super().add_row(*cells, **kwargs)


def _fold(column: rich_table.Column) -> None:
    if column.overflow == "ellipsis":
        column.overflow = "fold"
    header = column.header.plain if isinstance(column.header, Text) else str(column.header)
    if isinstance(column.header, str):
        column.header = plain(column.header)
    if header == "id" or header.endswith(" id") or header.endswith("_id"):
        column.min_width = max(column.min_width or 0, 8)  # ids fold over lines but keep some width


def table_console(wide: bool = False) -> Console:
    """A console for tables: the terminal's width, 140 columns when piped, or unbounded if ``wide``."""
    console = Console()
    if wide:
        return Console(width=max(console.width, 400))
    return console if console.is_terminal else Console(width=140)
