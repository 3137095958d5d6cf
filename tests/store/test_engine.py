"""Opening databases: clear errors when there is nothing usable at the URL."""

import pytest

import rolloutdb
from rolloutdb.errors import StoreUnavailableError


def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database")
    with pytest.raises(StoreUnavailableError, match="not a SQLite database"):
        rolloutdb.connect(f"sqlite:///{path}")
    assert path.read_text() == "these are my notes, not a database"


def test_a_missing_directory_is_refused_clearly(tmp_path):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        rolloutdb.connect(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_an_unreachable_server_is_refused_with_what_to_check():
    with pytest.raises(StoreUnavailableError, match="Check that the server is running"):
        rolloutdb.connect("postgresql://postgres@127.0.0.1:1/nothing")
