"""Running the `rolloutdb` command line in tests, and reading what it printed."""

from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import rolloutdb
from rolloutdb.cli import app

RUN = "demo-under-test"
# Wide enough that no table drops a column; Rich reads COLUMNS when it prints.
runner = CliRunner(env={"COLUMNS": "200"})


def rolloutdb_cli(url: str, *args: str):
    return runner.invoke(app, ["--url", url, *args])


def succeeds(url: str, *args: str) -> str:
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 0, f"rolloutdb {' '.join(args)} failed:\n{result.output}"
    return result.stdout


def fails(url: str, *args: str) -> str:
    """Run a command that must fail cleanly: exit code 1, a one-line error on stderr, no traceback."""
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    return result.stderr


def refused(url: str, *args: str) -> str:
    """Run a command whose arguments the command line itself refuses (exit code 2, a usage error)."""
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 2, result.output
    return result.output


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def line_with(output: str, start: str) -> str:
    """The first line of ``output`` that starts with ``start`` once indentation is stripped."""
    for line in output.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starts with {start!r} in:\n{output}")


def line_containing(output: str, part: str) -> list[str]:
    """The words of the first line of ``output`` that contains ``part``."""
    for line in output.splitlines():
        if part in line:
            return line.split()
    raise AssertionError(f"no line contains {part!r} in:\n{output}")


def in_order(output: str, *parts: str) -> bool:
    """Whether ``parts`` occur in ``output`` one after the other."""
    position = 0
    for part in parts:
        position = output.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


def connect_in_the_past(url: str, ago: timedelta):
    """A store whose clock runs ``ago`` behind: what it writes looks that old to the CLI."""
    return rolloutdb.connect(url, clock=lambda: datetime.now(timezone.utc) - ago)
