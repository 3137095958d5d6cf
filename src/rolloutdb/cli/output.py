"""What every command prints with: the consoles, tables that fit the terminal, label/value fields, JSON lines,
times and sizes, progress bars, and errors as one line.

Nothing here imports the store: ``rolloutdb --help`` must not pay for it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvalidInputError, RolloutDBError

# Markup, emoji codes and highlighting off: run names, configs and errors are printed as they are.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])
# C0 and C1 controls (ESC starts terminal escape sequences), line and paragraph separators, bidi overrides.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What JSON leaves as it is of those: JSON escapes the C0 controls itself.
UNESCAPED_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Units largest first, each at most once: "7d", "12h", "1d12h", "1h30m".
LONGEST_DURATION = timedelta(days=100 * 365)
DURATION = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
SHORT_ID_LENGTH = 8  # ids are UUIDv7: the first 8 digits change every minute or so


# -- errors -------------------------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    # soft_wrap: the terminal wraps the line, so commands in the message copy and paste whole.
    err_console.print(f"Error: {printable(message)}", style="red", soft_wrap=True)
    raise typer.Exit(1)


def reports_errors(command: F) -> F:
    """Print a RolloutDBError, or an error the database raised, as one line with exit code 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RolloutDBError as exc:
            fail(str(exc))
        except OverflowError as exc:  # e.g. --step 99999999999999999999: SQLite's driver refuses it
            fail(f"a number is too large: {exc}")
        except Exception as exc:
            detail = driver_error(exc)
            if detail is None:
                raise
            fail(f"the database reported an error: {detail}")

    return wrapper  # type: ignore[return-value]


def driver_error(exc: Exception) -> str | None:
    """The first line of a database driver's error (e.g. a file that is not a SQLite database); None for
    anything else. SQLAlchemy's own message adds the statement and its parameters: left out."""
    # Looked up, not imported: an error of a database library can only come once that library is loaded.
    sqlalchemy_errors, sqlite = sys.modules.get("sqlalchemy.exc"), sys.modules.get("sqlite3")
    if sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.DBAPIError):
        exc = exc.orig
    elif sqlite is None or not isinstance(exc, sqlite.DatabaseError):
        return None
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- text -------------------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``), for data read from
    the database, files or other programs: the consoles print no markup, and this keeps such data from moving
    the cursor, recolouring the terminal or breaking a line."""
    return CONTROL_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def format_value(value: Any) -> str:
    """A cell or field: "-" for nothing, floats to 4 digits, JSON for lists and dicts, all printable."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return printable(json.dumps(value, ensure_ascii=False))
    return printable(str(value))


def format_json(value: Any) -> str:
    """Any JSON value as compact JSON ("-" for none), printable: a string shows its quotes."""
    return "-" if value is None else printable(json.dumps(value, ensure_ascii=False))


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exponent = min(int(math.log(size, 1024)) if size > 0 else 0, len(units) - 1)
    return f"{size / 1024 ** exponent:.1f} {units[exponent]}" if exponent else f"{size} B"


def short_ids(ids: Iterable[str | None]) -> dict[str, str]:
    """Each id cut to its shortest start (at least SHORT_ID_LENGTH characters) that no other of ``ids``
    shares: what a listing shows, and what any command taking an id accepts back."""
    unique = sorted({id for id in ids if id})
    shortest = {}
    for index, id in enumerate(unique):
        neighbours = unique[max(index - 1, 0):index] + unique[index + 1:index + 2]
        shared = max((len(_common_start(id, other)) for other in neighbours), default=0)
        shortest[id] = id[:max(SHORT_ID_LENGTH, shared + 1)]
    return shortest


def _common_start(a: str, b: str) -> str:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return a[:length]


# -- times ------------------------------------------------------------------------------------------------


def format_time(value: datetime | None, *, precision: str = "seconds", day_of: datetime | None = None) -> str:
    """Local time to the "minutes", "seconds" or "milliseconds"; "-" when unset.

    Only the time of day when ``value`` falls on the same day as ``day_of`` (shown next to it).
    """
    if value is None:
        return "-"
    local = value.astimezone().replace(tzinfo=None)
    if day_of is not None and local.date() == day_of.astimezone().date():
        return local.time().isoformat(timespec=precision)
    return local.isoformat(sep=" ", timespec=precision)


def format_duration(start: datetime | None, end: datetime | None) -> str:
    """e.g. "4.2s", "3m 07s", "2h 05m", "3d 04h"; "-" when either end is unset."""
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def format_age(value: datetime | None, now: datetime) -> str:
    """How long before ``now`` ``value`` was, e.g. "12.0s ago"; "-" when unset."""
    return "-" if value is None else f"{format_duration(value, max(value, now))} ago"


def relative_time(value: datetime | None, now: datetime) -> str:
    """A time as listings show it: "12s ago", "5m ago", "3h ago", "6d ago"; the date after a month."""
    if value is None:
        return "-"
    seconds = max((now - value).total_seconds(), 0)
    if seconds >= 30 * 86400:
        return value.astimezone().date().isoformat()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def parse_duration(value: str) -> timedelta:
    """"30s", "15m", "12h", "7d" or a combination, largest unit first, such as "1d12h"."""
    match = DURATION.fullmatch(value.strip())
    if match is None or not match.group(0):
        raise InvalidInputError(f"cannot read {value!r} as a duration: give a number and a unit s, m, h or d, "
                                "e.g. 30s, 15m, 12h, 7d, or a combination largest unit first such as 1d12h")
    amounts = {unit: int(amount or 0) for unit, amount in match.groupdict().items()}
    seconds = amounts["d"] * 86400 + amounts["h"] * 3600 + amounts["m"] * 60 + amounts["s"]
    if seconds > LONGEST_DURATION.total_seconds():  # the store subtracts it from now: keep well after year 1
        raise InvalidInputError(f"{value!r} is too long a duration: at most {LONGEST_DURATION.days}d")
    return timedelta(seconds=seconds)


# -- tables and fields --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column. Columns are dropped, highest ``drop`` first, until the table fits the terminal; 0 is
    never dropped. A ``text`` column (free text, JSON) wraps between words and cuts a word too long for it
    with "…"; every other column is as wide as its widest cell, so ids, statuses, times and numbers stay whole."""

    header: str
    drop: int = 0
    text: bool = False
    justify: str = "left"
    min_width: int = 0  # room for values still to come (rows printed later in line with these)


# Table(box=SIMPLE_HEAD, show_edge=False): one space of padding either side of the one-character divider
# between two columns, and one at either edge of the table.
COLUMN_GAP = 3
EDGES = 2
NARROWEST_TEXT = 12
UNLIMITED = 1_000_000


def print_table(title: str | None, columns: Sequence[Column | str], rows: Iterable[Sequence[Any]], *,
                wide: bool = False, show_header: bool = True,
                widths: list[int | None] | None = None) -> list[int | None]:
    """A table of ``rows`` that fits the terminal (see Column); ``wide``: every column, whole, however wide.
    Returns the width of each column, None for a dropped one: pass them back as ``widths`` to print more rows
    in line with these (with ``show_header=False``)."""
    columns = [column if isinstance(column, Column) else Column(column) for column in columns]
    cells = [[format_value(cell) for cell in row] for row in rows]
    if widths is None:
        widths = fit_columns(columns, cells, UNLIMITED if wide else console.width)
    table = Table(title=None if title is None else printable(title), title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD, show_edge=False, show_header=show_header)
    kept = [index for index, width in enumerate(widths) if width is not None]
    for index in kept:
        column = columns[index]
        table.add_column(printable(column.header), width=widths[index], no_wrap=not column.text,
                         overflow="ellipsis", justify=column.justify)  # type: ignore[arg-type]
    for row in cells:
        table.add_row(*(row[index] for index in kept))
    needed = table_width(widths)
    # Wider than the terminal (--wide, or columns that cannot go): whole rows, which the terminal wraps.
    # Rich prints no wider than its console, hence a console as wide as the table.
    (console if needed <= console.width else Console(width=needed, markup=False, emoji=False,
                                                     highlight=False)).print(table)
    return widths


def fit_columns(columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int) -> list[int | None]:
    """The width of each column (None: dropped) so that the table fits ``width`` characters."""
    natural = [max([cell_len(column.header), column.min_width, *(cell_len(row[index]) for row in cells)])
               for index, column in enumerate(columns)]
    narrowest = [min(natural[index], max(NARROWEST_TEXT, cell_len(column.header))) if column.text
                 else natural[index] for index, column in enumerate(columns)]
    kept = set(range(len(columns)))

    def needed(sizes: Sequence[int]) -> int:
        return table_width([size if index in kept else None for index, size in enumerate(sizes)])

    # Highest drop first; of equal ones, the rightmost.
    for index in sorted((i for i, column in enumerate(columns) if column.drop), key=lambda i: (columns[i].drop, i),
                        reverse=True):
        if needed(narrowest) <= width:
            break
        kept.discard(index)
    sizes = list(narrowest)
    spare = width - needed(sizes)
    for index in sorted(kept):  # text columns widen left to right as far as the terminal allows
        if columns[index].text and spare > 0:
            grown = min(natural[index], sizes[index] + spare)
            spare -= grown - sizes[index]
            sizes[index] = grown
    return [sizes[index] if index in kept else None for index in range(len(columns))]


def table_width(widths: Sequence[int | None]) -> int:
    """How wide a table with columns this wide is (None: a dropped column)."""
    kept = [width for width in widths if width is not None]
    return sum(kept) + COLUMN_GAP * (len(kept) - 1) + EDGES


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """Label / value pairs, one a line, labels aligned; pairs without a value are left out. A value wraps
    between words under itself; one with a word too long for the line (a URL, a path) is printed whole, for the
    terminal to wrap, so that it copies and pastes whole."""
    rows = [(label, format_value(value)) for label, value in fields if value is not None]
    label_width = max((cell_len(label) for label, _ in rows), default=0)
    room = console.width - label_width - 2
    for label, text in rows:
        if max((cell_len(word) for word in text.split()), default=0) > room:
            console.print(f"{label:<{label_width}}  {text}", soft_wrap=True)
            continue
        grid = Table.grid()
        grid.add_column(style="bold", no_wrap=True, width=label_width + 2)  # two spaces before the value
        grid.add_column()
        grid.add_row(label, text)
        console.print(grid)


def print_json(items: Iterable[Any]) -> None:
    """One JSON object per line: records as their own JSON dump, dataclasses field by field."""
    for item in items:
        if dataclasses.is_dataclass(item):
            line = json.dumps(dataclasses.asdict(item), default=str, ensure_ascii=False)
        else:
            line = item.model_dump_json()
        # Valid JSON still: these characters only occur inside strings, and \\uXXXX is the same character.
        sys.stdout.write(escaped_json(line) + "\n")
    sys.stdout.flush()


def escaped_json(text: str) -> str:
    """JSON text with the characters JSON leaves as they are but a terminal acts on written as ``\\uXXXX``: valid
    JSON still, since they only occur inside strings, where the escape is the same character."""
    return UNESCAPED_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def answered_without_table(items: Sequence[Any], *, json: bool, noun: str, where: str, filtered: bool) -> bool:
    """With --json, print ``items`` as JSON lines; without, say so when there are none ("No runs in project
    'x' match the filters."). Whether that was the whole answer; if not, the caller prints its table."""
    if json:
        print_json(items)
        return True
    if not items:
        console.print(f"No {noun} in {printable(where)}" + (" match the filters." if filtered else "."))
        return True
    return False


def print_shown(shown: int, total: int, noun: str) -> None:
    """Say that a listing stopped at its --limit, when it did."""
    if total > shown:
        console.print(f"{shown} of {total} {noun} shown; raise --limit to see more.")


def progress_bar(*, total_shown: bool = True) -> Progress:
    # On stderr, so that stdout carries only the result; quiet when stderr is not a terminal, where Rich would
    # leave an empty line (before an error message, in a log).
    counter = [MofNCompleteColumn()] if total_shown else []
    return Progress(TextColumn("{task.description}"), BarColumn(), *counter, TimeElapsedColumn(),
                    console=err_console if err_console.is_terminal else Console(stderr=True, quiet=True),
                    transient=True)
