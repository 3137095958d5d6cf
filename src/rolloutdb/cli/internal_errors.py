"""A bug of the command line's own: one line on stderr saying where the details are, the traceback appended to
a log file, and an exit code of its own. Errors the user can fix are ``output.reports_errors``'s, one line each.

The log is ``rolloutdb-cli.log`` in ``ROLLOUTDB_LOG_DIR``, or else the user's log directory (platformdirs: on
Linux ``$XDG_STATE_HOME/rolloutdb/log``, by default ``~/.local/state/rolloutdb/log``); when that cannot be written,
in the temporary directory, and the line says why. ``--debug`` (or ``ROLLOUTDB_DEBUG=1``) shows the traceback
instead.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import typer

from .options import TargetGroup
from .output import err_console, printable

LOG_DIR_VAR = "ROLLOUTDB_LOG_DIR"
DEBUG_VAR = "ROLLOUTDB_DEBUG"
LOG_NAME = "rolloutdb-cli.log"
LOG_LIMIT_BYTES = 1 << 20  # past this, the log starts afresh (the old one kept as rolloutdb-cli.log.1)
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE of sysexits.h: an internal software error (bad input exits 1, usage 2)
SUMMARY_LIMIT = 200  # characters of the error on the line; the log has all of it
PASSWORD_IN_URL = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")


def log_directory() -> Path:
    """Where the command line appends the tracebacks of its bugs."""
    configured = os.environ.get(LOG_DIR_VAR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # here: only a failing command needs it

    return platformdirs.user_log_path("rolloutdb", appauthor=False)


class BugReportingGroup(TargetGroup):
    """The ``rolloutdb`` command: a bug in any of its commands is reported in one line, its traceback logged.
    Exits, aborts, usage errors, Ctrl-C and a closed pipe keep Typer's handling."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise
        except Exception as exc:
            if debugging(ctx.params.get("debug", False)):
                raise
            report_internal_error(exc)


def report_internal_error(exc: Exception) -> NoReturn:
    """Log ``exc`` with its traceback, print one line naming the log, exit with EXIT_INTERNAL_ERROR."""
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    summary = printable(summary if len(summary) <= SUMMARY_LIMIT else summary[:SUMMARY_LIMIT - 1] + "…")
    entry = _log_entry(exc)
    wanted = log_directory()
    try:
        where = _append(wanted, entry)
    except OSError as first:
        fallback = Path(tempfile.gettempdir()) / f"rolloutdb-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        cannot = f"could not write to {wanted} ({first.strerror or first})"
        try:
            where = _append(fallback, entry)
        except OSError:
            details = f"{cannot}, nor to {fallback}: run it again with --debug to see the details"
        else:
            details = f"details in {where} ({cannot})"
    else:
        details = f"details in {where}"
    err_console.print(f"Error: internal error ({summary}); {printable(details)} — please report it",
                      style="red", soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(EXIT_INTERNAL_ERROR)


def debugging(flag: bool) -> bool:
    """Whether an internal error shows its traceback: ``--debug``, or ROLLOUTDB_DEBUG set to anything but 0."""
    return flag or os.environ.get(DEBUG_VAR, "0") not in ("", "0")


def _log_entry(exc: Exception) -> str:
    from .. import __version__

    command = PASSWORD_IN_URL.sub(r"\1***@", shlex.join(["rolloutdb", *sys.argv[1:]]))
    return (f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} rolloutdb {__version__}, "
            f"Python {sys.version.split()[0]}, {sys.platform}\n$ {command}\n"
            + "".join(traceback.format_exception(exc)) + "\n")


def _append(directory: Path, entry: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / LOG_NAME
    if log.exists() and log.stat().st_size > LOG_LIMIT_BYTES:
        log.replace(log.with_name(LOG_NAME + ".1"))
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(entry)
    return log.resolve()
