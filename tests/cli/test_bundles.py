"""`rolloutdb export bundle`, `rolloutdb import` and `rolloutdb archive`: a run out of one database and into
another, what they print, and bad input."""

import uuid

import orjson
import pytest

import rolloutdb
from rolloutdb.demo import train_demo
from cli.clitools import fails, line_with, succeeds
from conftest import BACKENDS, new_database_url

RUN = "bundle-demo"


@pytest.fixture(params=BACKENDS)
def demo(request, postgres_databases, tmp_path):
    """A database of the backend with the demo's training run, as (url, project), and another, empty one."""
    url, project = new_database_url(request.param, postgres_databases, tmp_path), f"test-{uuid.uuid4().hex[:12]}"
    with rolloutdb.connect(url, project=project) as store:
        train_demo(store, RUN, steps=2)
    other = new_database_url(request.param, postgres_databases, tmp_path)
    rolloutdb.connect(other, project=project).close()
    return url, project, other


def test_a_run_bundled_then_imported_elsewhere_twice(demo, tmp_path):
    url, project, other = demo
    out = tmp_path / "run.rdb.tar"
    output = succeeds(url, "--project", project, "export", "bundle", "--run", RUN, "--out", str(out))
    with rolloutdb.connect(url, project=project) as store:
        rollouts = store.rollouts.count(run_id=store.runs.get(RUN).id)
    assert f"Wrote {rollouts} rollouts with" in output and f"to {out} (" in output
    assert line_with(output, "rollouts").split()[-1] == str(rollouts)
    imported = orjson.loads(succeeds(other, "--project", project, "import", str(out), "--json"))
    assert imported["inserted"]["rollouts"] == rollouts and imported["kept"]["rollouts"] == 0
    again = succeeds(other, "--project", project, "import", str(out))
    assert "Added 0 rows" in again and line_with(again, "rollouts").split()[-2:] == ["0", str(rollouts)]
    with rolloutdb.connect(other, project=project) as store:
        assert store.rollouts.count() == rollouts and store.runs.get(RUN).name == RUN


def test_bundle_bad_input_is_refused_and_writes_nothing(demo, tmp_path):
    url, project, _ = demo
    out = str(tmp_path / "b.tar")
    assert "--drop-thinking: how messages are made does not apply to a bundle" in fails(
        url, "--project", project, "export", "bundle", "--drop-thinking", "--out", out)
    assert "per_task do(es) not apply to it; fields: runs" in fails(
        url, "--project", project, "export", "bundle", "--per-task", "1", "--out", out)
    assert "formats: trl-lm, trl-lm-chat" in fails(url, "--project", project, "export", "bundel", "--out", out)
    assert list(tmp_path.glob("b.tar*")) == []
    empty = succeeds(url, "--project", project, "export", "bundle", "--dataset", "none-such", "--out", out)
    assert "the selection gave no rollouts, the bundle is empty" in empty
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 100)
    assert "is not a bundle that can be imported" in fails(url, "--project", project, "import",
                                                           str(tmp_path / "bad.tar"))


def test_archive_then_import_restores(demo, tmp_path):
    url, project, _ = demo
    with rolloutdb.connect(url, project=project) as store:
        finished = store.rollouts.count()
    output = succeeds(url, "--project", project, "archive", "--older-than", "0s", "--to", str(tmp_path))
    assert f"Archived {finished} rollouts" in output and f"purged {finished} rollouts" in output
    (archive,) = tmp_path.glob("*.rdb.tar")
    with rolloutdb.connect(url, project=project) as store:
        assert store.rollouts.count() == 0
    succeeds(url, "--project", project, "import", str(archive))
    with rolloutdb.connect(url, project=project) as store:
        assert store.rollouts.count() == finished
    assert "cannot read 'soon' as a duration" in fails(url, "--project", project, "archive", "--older-than", "soon",
                                                       "--to", str(tmp_path))
