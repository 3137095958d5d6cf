"""A failure the command line did not expect (a bug, or the system failing under it) prints one line naming the
log file that holds the traceback, and exits 70; --debug shows the traceback instead; Ctrl-C is left alone.

Each runs the real command line in a new process. The failure is a real one: standard output is /dev/full, so
the first thing a command prints fails with ENOSPC."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rolloutdb

SOURCE = str(Path(rolloutdb.__file__).parent.parent)
# journal ls reads only files: a URL with a password needs no server here, and must not reach the log.
COMMAND = ["--url", "postgresql://trainer:s3cret@db-host/rl", "journal", "ls", "--dir"]
ONE_LINE = re.compile(r"Error: internal error \(OSError: \[Errno 28\] No space left on device\); "
                      r"details in (?P<log>\S+) (?P<why>\(could not write to .*\) )?— please report it\n")

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to make writing fail")


def rolloutdb_failing(tmp_path: Path, *options: str, **environment: str) -> subprocess.CompletedProcess:
    """``rolloutdb [options] journal ls`` with standard output that cannot be written."""
    env = {**{name: value for name, value in os.environ.items() if name != "ROLLOUTDB_DEBUG"},
           "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")]),
           "ROLLOUTDB_LOG_DIR": str(tmp_path / "logs"), **environment}
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "rolloutdb.cli", *options, *COMMAND, str(tmp_path)],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=env, timeout=60)


def test_an_unexpected_failure_prints_one_line_naming_the_log_that_holds_the_traceback(tmp_path):
    result = rolloutdb_failing(tmp_path)
    assert result.returncode == 70
    said = ONE_LINE.fullmatch(result.stderr)
    assert said and not said["why"], result.stderr
    log = Path(said["log"])
    assert log == (tmp_path / "logs" / "rolloutdb-cli.log").resolve()
    entry = log.read_text()
    assert "Traceback (most recent call last)" in entry and "OSError: [Errno 28] No space left on device" in entry
    assert f"$ rolloutdb --url postgresql://trainer:***@db-host/rl journal ls --dir {tmp_path}" in entry
    assert "s3cret" not in entry
    rolloutdb_failing(tmp_path)  # a second failure is added to the same log
    assert log.read_text().count("Traceback (most recent call last)") == 2


def test_a_log_folder_that_cannot_be_written_is_said_and_the_temporary_folder_used(tmp_path):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "tmp").mkdir()
    result = rolloutdb_failing(tmp_path, ROLLOUTDB_LOG_DIR=str(tmp_path / "a-file" / "logs"),
                               TMPDIR=str(tmp_path / "tmp"))
    said = ONE_LINE.fullmatch(result.stderr)
    assert result.returncode == 70 and said, result.stderr
    assert said["why"].startswith(f"(could not write to {tmp_path / 'a-file' / 'logs'} (")
    assert Path(said["log"]).parent.parent == (tmp_path / "tmp").resolve()
    assert "No space left on device" in Path(said["log"]).read_text()


@pytest.mark.parametrize("asked", [{"options": ["--debug"]}, {"environment": {"ROLLOUTDB_DEBUG": "1"}}])
def test_debug_shows_the_traceback_instead(tmp_path, asked):
    result = rolloutdb_failing(tmp_path, *asked.get("options", []), **asked.get("environment", {}))
    assert result.returncode not in (0, 70)
    assert "Traceback" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "logs").exists()


def rolloutdb_raising(tmp_path: Path, exception: str) -> subprocess.CompletedProcess:
    """The real command line with one more command, registered here for the test, that raises ``exception``."""
    script = ("from rolloutdb.cli import app\n"
              "@app.command('raising')\n"
              "def raising() -> None:\n"
              f"    raise {exception}\n"
              "app(['raising'], prog_name='rolloutdb')\n")
    env = {**{name: value for name, value in os.environ.items() if name != "ROLLOUTDB_DEBUG"},
           "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")]),
           "ROLLOUTDB_LOG_DIR": str(tmp_path / "logs")}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_a_bug_is_named_by_its_exception_on_the_line(tmp_path):
    result = rolloutdb_raising(tmp_path, "KeyError('x')")
    log = (tmp_path / "logs" / "rolloutdb-cli.log").resolve()
    assert (result.returncode, result.stderr) == (
        70, f"Error: internal error (KeyError: 'x'); details in {log} — please report it\n")
    assert "KeyError: 'x'" in log.read_text()


def test_ctrl_c_still_ends_a_command_quietly_with_130(tmp_path):
    """KeyboardInterrupt is no bug: it goes by as before (Typer exits 130), and nothing is logged."""
    result = rolloutdb_raising(tmp_path, "KeyboardInterrupt")
    assert result.returncode == 130 and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "logs").exists()
