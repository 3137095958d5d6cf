"""``python -m rolloutdb.cli``: the ``rolloutdb`` command."""

from . import app

app(prog_name="rolloutdb")
