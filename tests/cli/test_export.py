"""`rolloutdb export`: training data from a recorded run, the summary it prints, and bad input."""

import uuid

import orjson
import pyarrow.parquet as pq
import pytest

import rolloutdb
from rolloutdb.demo import train_demo
from cli.clitools import fails, line_with, succeeds
from conftest import BACKENDS

RUN = "export-demo"


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request, session_backends):
    """The session's database and a project of its own holding two steps of the demo's training run (groups,
    rollouts and turns): as the (url, project) the commands take."""
    url, project = session_backends.database_url(request.param), f"test-{uuid.uuid4().hex[:12]}"
    with rolloutdb.connect(url, project=project) as store:
        train_demo(store, RUN, steps=2)
    return url, project


def run(demo, *args):
    return succeeds(demo[0], "--project", demo[1], *args)


def connect(demo):
    return rolloutdb.connect(demo[0], project=demo[1])


def test_export_writes_the_selection_and_prints_what_it_kept_and_skipped(demo, tmp_path):
    out = tmp_path / "pairs.jsonl"
    output = run(demo, "export", "trl-preference-chat", "--run", RUN, "--out", str(out))
    with connect(demo) as store:
        expected = store.export("trl-preference-chat", {"runs": [RUN]}, out=tmp_path / "api.jsonl")
    assert expected.rows > 0
    assert f"Wrote {expected.rows} rows from {expected.rollouts} rollouts to {out}." in output
    for reason, count in expected.skipped.items():  # the table of what was skipped, and why
        assert line_with(output, reason).split()[-1] == str(count)
    assert out.read_bytes() == (tmp_path / "api.jsonl").read_bytes()
    # --json: the summary as one JSON object; the selection options reach the store.
    summary = orjson.loads(run(demo, "export", "verl", "--run", RUN, "--step-max", "0", "--per-task",
                                    "1", "--success-only", "--out", str(tmp_path / "v.parquet"), "--json"))
    table = pq.read_table(tmp_path / "v.parquet")
    assert summary["rows"] == table.num_rows > 0 and summary["format"] == "verl"
    with connect(demo) as store:
        for info in table.column("extra_info").to_pylist():
            rollout = store.rollouts.get(info["rollout_id"])
            assert rollout.step == 0 and rollout.success is True
        assert table.num_rows == len({store.rollouts.get(info["rollout_id"]).task_id
                                      for info in table.column("extra_info").to_pylist()})


def test_export_of_nothing_says_the_file_is_empty(demo, tmp_path):
    output = run(demo, "export", "trl-lm", "--dataset", "no-such-dataset", "--out",
                      str(tmp_path / "none.jsonl"))
    assert "Wrote 0 rows from 0 rollouts" in output and "the selection gave no rows, the file is empty" in output
    assert (tmp_path / "none.jsonl").read_bytes() == b""


def test_export_refuses_an_unknown_format_or_run_and_writes_nothing(demo, tmp_path):
    out = str(tmp_path / "x.parquet")
    assert "unknown export format 'sft'; formats: trl-lm, trl-lm-chat" in fails(demo[0], "--project", demo[1], "export", "sft",
                                                                                 "--out", out)
    assert "no run with id or name 'nope'" in fails(demo[0], "--project", demo[1], "export", "verl", "--run", "nope", "--out", out)
    assert list(tmp_path.iterdir()) == []
