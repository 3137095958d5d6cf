"""Fixtures of the command-line tests."""

import pytest

import rolloutdb
from cli.clitools import RUN
from sample_run import record_sample_run


@pytest.fixture
def demo_url(fresh_database_url) -> str:
    """A fresh database holding one sample training run named RUN (3 steps of 2 groups of 4)."""
    with rolloutdb.connect(fresh_database_url) as store:
        record_sample_run(store, RUN)
    return fresh_database_url
