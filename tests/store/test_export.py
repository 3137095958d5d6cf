"""store.export: stored rollouts out as TRL, verl and OpenAI training data, read back with the real `datasets`
library; the selection, the message policy, screenshots, and bad input. Export streams from the database,
so it is local only: the http backend is skipped."""

import io
import uuid
from pathlib import Path

import orjson
import pytest
from datasets import Features, Image, List, Value, load_dataset
from PIL import Image as PILImage

import rolloutdb
from rolloutdb.errors import InvalidInputError, NotFoundError
from rolloutdb.store import export as export_module
from rolloutdb.store.export import FORMATS

from conftest import BACKENDS

LOCAL_ONLY = "export streams from the database: a local-only operation, with no server route"


def png(red: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (2, 2), (red, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def action(n: int) -> dict:
    return {"type": "add", "n": n}


def recorded(store, *, run, task=None, group=None, step=None, mode="train", turns=(), reward=None, success=None,
             status="succeeded", input=None):
    """A rollout with its turns (observation, thinking, action, reward, success[, screenshot]), then finished."""
    claim = store.rollouts.start(input, run_id=run.id, task_id=task and task.id, group_id=group and group.id,
                                 step=step, mode=mode)
    for index, (observation, thinking, act, turn_reward, turn_success, *shot) in enumerate(turns):
        turn = store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=index,
                                  observation=observation, thinking=thinking, action=act, reward=turn_reward,
                                  success=turn_success)
        if shot:
            store.artifacts.put(shot[0], "image/png", role="screenshot", turn_id=turn.id)
    if status == "cancelled":
        return store.rollouts.cancel(claim.rollout.id)
    return store.rollouts.update(claim.rollout.id, status=status, reward=reward, success=success)


TWO_TURNS = [("start at 1", "add two", action(2), 0.0, None, png(10)), ("at 3", "add two more", action(2), 1.0, None)]


@pytest.fixture(scope="module", params=[*BACKENDS, pytest.param("http-sqlite", marks=pytest.mark.http)])
def data(request, session_backends):
    """One project holding every case: groups with a winner, a tie and single-turn answers, an eval child run
    with a duplicate, a retried rollout, a rollout known only by its LLM span, and a cancelled one."""
    if request.param.startswith("http"):
        pytest.skip(f"not through a server: {LOCAL_ONLY}")
    with rolloutdb.connect(session_backends.database_url(request.param),
                           project=f"test-{uuid.uuid4().hex[:12]}") as store:
        one, two = store.tasks.save([
            {"external_id": "reach-5", "instruction": "Reach 5 from 1.", "input": {"target": 5}, "dataset": "arith",
             "split": "train", "tags": ["easy", "math"], "metadata": {"ground_truth": "5", "ability": "math"},
             "validator": {"name": "exact", "kind": "equals", "config": {"field": "value"}}},
            {"external_id": "reach-9", "instruction": "Reach 9 from 1.", "input": {"target": 9}, "dataset": "arith",
             "split": "test", "tags": ["math"]}])
        train = store.runs.create(name="train")
        evaluation = store.runs.create(name="train-eval", kind="eval", parent_run_id=train.id)
        other = store.runs.create(name="other")
        g1 = store.groups.create(run_id=train.id, step=1, task_id=one.id)
        g2 = store.groups.create(run_id=train.id, step=2, task_id=two.id)
        ids = {}
        ids["best"] = recorded(store, run=train, task=one, group=g1, step=1, turns=TWO_TURNS, reward=1.0, success=True).id
        ids["worst"] = recorded(store, run=train, task=one, group=g1, step=1, reward=0.0, success=False, turns=[
            ("start at 1", None, action(1), 0.0, False), ("at 2", None, action(9), None, False)]).id
        ids["middle"] = recorded(store, run=train, task=one, group=g1, step=1, reward=0.5, turns=[
            ("start at 1", "hmm", action(3), 0.5, None)]).id
        for name in ("tie-a", "tie-b"):
            ids[name] = recorded(store, run=train, task=two, group=g2, step=2, reward=1.0, success=True, turns=[
                ("start at 1", None, {"type": "mul", "n": 9}, None, None)]).id
        for name in ("eval", "eval-twin"):
            ids[name] = recorded(store, run=evaluation, task=one, mode="val", reward=1.0, success=True, turns=[
                ("start at 1", None, action(4), 1.0, True)]).id
        retried = store.rollouts.start(None, run_id=train.id, task_id=two.id, step=3,
                                       config={"max_attempts": 2, "retry_condition": ["failed"]})
        store.turns.create(rollout_id=retried.rollout.id, attempt_id=retried.attempt.id, turn_index=0,
                           observation="first try", action=action(0))
        store.attempts.update(retried.rollout.id, status="failed")
        second = store.attempts.start(retried.rollout.id)
        store.turns.create(rollout_id=retried.rollout.id, attempt_id=second.attempt.id, turn_index=0,
                           observation="second try", action=action(8), reward=1.0)
        ids["retried"] = store.rollouts.update(retried.rollout.id, status="succeeded", reward=1.0, success=True).id
        g3 = store.groups.create(run_id=train.id, step=4, task_id=two.id)
        for name, reward, n in (("short-good", 1.0, 9), ("short-bad", 0.0, 1)):
            ids[name] = recorded(store, run=train, task=two, group=g3, step=4, reward=reward, turns=[
                ("start at 1", None, {"type": "mul", "n": n}, reward, None)]).id
        llm = store.rollouts.start("what is 2+2?", run_id=other.id, step=1)
        store.spans.add_many([
            {"rollout_id": llm.rollout.id, "attempt_id": llm.attempt.id, "trace_id": "t", "span_id": "tool",
             "name": "tool.call", "attributes": {"tool": "calculator"}},
            {"rollout_id": llm.rollout.id, "attempt_id": llm.attempt.id, "trace_id": "t", "span_id": "llm",
             "name": "openai.chat", "attributes": {
                 "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
                 "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "what is 2+2?",
                 "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "4"}}])
        ids["llm"] = store.rollouts.update(llm.rollout.id, status="succeeded", reward=1.0, success=True).id
        ids["cancelled"] = recorded(store, run=train, task=one, status="cancelled", turns=TWO_TURNS).id
        yield store, ids


def load(path, cache):
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


MESSAGES = List({"role": Value("string"), "content": Value("string")})
TEXT = Value("string")
SCREENSHOTS = List(Value("string"))
EXPECTED = {
    "trl-lm": {"text": TEXT},
    "trl-lm-chat": {"messages": MESSAGES, "images": SCREENSHOTS},
    "trl-prompt-completion": {"prompt": TEXT, "completion": TEXT},
    "trl-prompt-completion-chat": {"prompt": MESSAGES, "completion": MESSAGES, "images": SCREENSHOTS},
    "trl-prompt-only": {"prompt": TEXT, "ground_truth": TEXT, "validator": TEXT},
    "trl-prompt-only-chat": {"prompt": MESSAGES, "images": SCREENSHOTS, "ground_truth": TEXT, "validator": TEXT},
    "trl-preference": {"prompt": TEXT, "chosen": TEXT, "rejected": TEXT},
    "trl-preference-chat": {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES},
    "trl-unpaired-preference": {"prompt": TEXT, "completion": TEXT, "label": Value("bool")},
    "trl-unpaired-preference-chat": {"prompt": MESSAGES, "completion": MESSAGES, "label": Value("bool")},
    "trl-stepwise": {"prompt": TEXT, "completions": List(TEXT), "labels": List(Value("bool"))},
    "verl": {"data_source": TEXT, "prompt": MESSAGES, "images": SCREENSHOTS, "ability": TEXT,
             "reward_model": {"style": TEXT, "ground_truth": TEXT},
             "extra_info": {"split": TEXT, "index": Value("int64"), "rollout_id": TEXT}},
    "openai-chat": {"messages": MESSAGES},
    "openai-preference": {"input": {"messages": MESSAGES}, "preferred_output": MESSAGES,
                          "non_preferred_output": MESSAGES},
}
ASKED = "Reach 5 from 1.\n\nstart at 1"  # the best rollout's prompt: its task's instruction and first observation
BEST = [{"role": "user", "content": ASKED},
        {"role": "assistant", "content": '<think>add two</think>\n{"n":2,"type":"add"}'},
        {"role": "user", "content": "at 3"},
        {"role": "assistant", "content": '<think>add two more</think>\n{"n":2,"type":"add"}'}]
WORST_COMPLETION = [{"role": "assistant", "content": '{"n":1,"type":"add"}'}, {"role": "user", "content": "at 2"},
                    {"role": "assistant", "content": '{"n":9,"type":"add"}'}]


def text_of(messages):
    return "\n\n".join(message["content"] for message in messages)


def first_row_as_stored(name, row, store, ids):
    """The row that comes from the best rollout (the first one stored), against what is stored of it."""
    best = store.rollouts.get(ids["best"])
    image = row.get("images", [None])[0]
    if image is not None:  # the screenshot of its first turn, written beside the file under its sha256
        assert image.endswith(".png") and store.artifacts.exists(image.rsplit("/", 1)[1].removesuffix(".png"))
    expected = {
        "trl-lm": {"text": text_of(BEST)},
        "trl-lm-chat": {"messages": BEST, "images": [image]},
        "trl-prompt-completion": {"prompt": ASKED, "completion": text_of(BEST[1:])},
        "trl-prompt-completion-chat": {"prompt": BEST[:1], "completion": BEST[1:], "images": [image]},
        "trl-prompt-only": {"prompt": ASKED, "ground_truth": "5", "validator":
                            '{"config":{"field":"value"},"kind":"equals","name":"exact"}'},
        "trl-prompt-only-chat": {"prompt": BEST[:1], "images": [image], "ground_truth": "5", "validator":
                                 '{"config":{"field":"value"},"kind":"equals","name":"exact"}'},
        "trl-preference": {"prompt": ASKED, "chosen": text_of(BEST[1:]), "rejected": text_of(WORST_COMPLETION)},
        "trl-preference-chat": {"prompt": BEST[:1], "chosen": BEST[1:], "rejected": WORST_COMPLETION},
        # per turn: its first turn's reward is 0.0 (and no success recorded): not a good step
        "trl-unpaired-preference": {"prompt": ASKED, "completion": BEST[1]["content"], "label": False},
        "trl-unpaired-preference-chat": {"prompt": BEST[:1], "completion": BEST[1:2], "label": False},
        "trl-stepwise": {"prompt": ASKED, "completions": [BEST[1]["content"], BEST[3]["content"]],
                         "labels": [False, True]},
        "verl": {"data_source": "arith", "prompt": BEST[:1], "images": [image], "ability": "math",
                 "reward_model": {"style": "rule", "ground_truth": "5"},
                 "extra_info": {"split": "train", "index": 0, "rollout_id": best.id}},
        "openai-chat": {"messages": BEST},
    }[name]
    assert row == expected


@pytest.mark.parametrize("name", [name for name in FORMATS if name != "openai-preference"])
def test_every_format_loads_with_datasets_with_its_columns_and_its_rows_from_the_stored_rollout(
        data, name, tmp_path):
    store, ids = data
    path = tmp_path / f"out.{'jsonl' if FORMATS[name].container == 'jsonl' else 'parquet'}"
    summary = store.export(name, out=path)
    dataset = load(path, tmp_path / "cache")
    assert dataset.features == Features(EXPECTED[name])
    assert len(dataset) == summary.rows > 0
    first_row_as_stored(name, dataset[0], store, ids)
    if name == "verl":  # its index numbers the rows
        assert [info["index"] for info in dataset["extra_info"]] == list(range(len(dataset)))
    if FORMATS[name].container is None:  # the same rows as JSONL (screenshots in a folder named after the file)
        jsonl = store.export(name, out=tmp_path / "out.jsonl", images="none")
        assert jsonl.rows == summary.rows
        assert load(tmp_path / "out.jsonl", tmp_path / "cache")[0] == {
            key: value for key, value in dataset[0].items() if key != "images"}


def test_openai_preference_pairs_single_replies_and_skips_longer_completions(data, tmp_path):
    store, ids = data
    path = tmp_path / "prefs.jsonl"
    summary = store.export("openai-preference", out=path)
    # Group 1's best and worst answer in several messages: no OpenAI pair (one assistant message each).
    assert summary.rows == 1 and summary.skipped["completion of several messages (OpenAI takes one)"] == 2
    dataset = load(path, tmp_path / "cache")
    assert dataset.features == Features(EXPECTED["openai-preference"])
    assert dataset[0] == {"input": {"messages": [{"role": "user", "content": "Reach 9 from 1.\n\nstart at 1"}]},
                          "preferred_output": [{"role": "assistant", "content": '{"n":9,"type":"mul"}'}],
                          "non_preferred_output": [{"role": "assistant", "content": '{"n":1,"type":"mul"}'}]}


def test_preference_pairs_best_against_worst_of_a_group_skipping_ties_and_small_margins(data, tmp_path):
    store, ids = data
    summary = store.export("trl-preference-chat", out=tmp_path / "p.jsonl")
    assert (summary.rows, summary.rollouts) == (2, 4)
    assert summary.skipped == {"tie": 2, "neither best nor worst of its group": 1}
    assert store.export("trl-preference-chat", {"min_margin": 1.0}, out=tmp_path / "p.jsonl").rows == 2
    assert store.export("trl-preference-chat", {"min_margin": 1.5}, out=tmp_path / "p.jsonl").skipped[
        "reward margin below min_margin"] == 4


def test_preference_pairs_do_not_depend_on_where_pages_end(data, tmp_path, monkeypatch):
    store, _ = data
    whole = store.export("trl-preference", out=tmp_path / "whole.jsonl")
    monkeypatch.setattr(export_module, "PAGE", 2)  # group 1's three rollouts span two pages
    monkeypatch.setattr(export_module, "KEYS", 3)  # and two batches of keys
    paged = store.export("trl-preference", out=tmp_path / "paged.jsonl")
    assert paged == whole.model_copy(update={"path": paged.path})
    assert (tmp_path / "paged.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


@pytest.mark.parametrize("name", ["trl-lm-chat", "trl-prompt-completion-chat", "trl-prompt-only-chat",
                                  "trl-preference-chat", "trl-unpaired-preference-chat"])
@pytest.mark.parametrize("messages", [{}, {"system": "You add.", "thinking": "drop"}])
def test_parquet_message_columns_taken_from_pages_hold_what_pyarrow_makes_of_the_rows_as_json(
        data, tmp_path, monkeypatch, name, messages):
    """Parquet's message columns are built from each page's flat lists of roles and contents (whole conversations,
    prompts or completions, pairs from two pages); the JSONL export writes the same rows as dicts. Pyarrow's
    conversion of those dicts to the Parquet file's schema is the very table the file holds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, _ = data
    monkeypatch.setattr(export_module, "PAGE", 3)  # pages end inside groups, and pairs take rollouts from two
    parquet, jsonl = tmp_path / "out.parquet", tmp_path / "out.jsonl"
    store.export(name, out=parquet, images="none", messages=messages)
    store.export(name, out=jsonl, images="none", messages=messages)
    table = pq.read_table(parquet)
    rows = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    assert table.num_rows == len(rows) > 0
    assert table.equals(pa.Table.from_pylist(rows, schema=table.schema))


def exported_ids(store, tmp_path, **selection):
    """The rollouts a selection exports, by their verl extra_info (which names the source rollout)."""
    path = tmp_path / f"{uuid.uuid4().hex}.parquet"
    store.export("verl", selection, out=path, images="none")
    import pyarrow.parquet as pq

    return {info["rollout_id"] for info in pq.read_table(path).column("extra_info").to_pylist()}


def test_the_selection_picks_rollouts_by_run_step_mode_status_reward_and_task(data, tmp_path):
    store, ids = data
    of = {rollout_id: name for name, rollout_id in ids.items()}

    def names(**selection):
        return sorted(of[rollout_id] for rollout_id in exported_ids(store, tmp_path, **selection))

    everything = ["best", "eval", "eval-twin", "llm", "middle", "retried", "short-bad", "short-good", "tie-a", "tie-b",
                  "worst"]
    assert names() == everything  # succeeded and failed: the cancelled one is left out
    assert "cancelled" in names(status=["cancelled"])
    assert names(runs=["train-eval"]) == ["eval", "eval-twin"]
    assert names(runs=["train"]) == ["best", "middle", "retried", "short-bad", "short-good", "tie-a", "tie-b", "worst"]
    assert names(runs=["train"], include_children=True) == sorted(everything[:3] + everything[4:])
    assert names(step_min=2, step_max=3) == ["retried", "tie-a", "tie-b"]
    assert names(mode=["val"]) == ["eval", "eval-twin"]
    assert names(success_only=True) == ["best", "eval", "eval-twin", "llm", "retried", "tie-a", "tie-b"]
    assert names(min_reward=0.5, runs=["train"], step_max=1) == ["best", "middle"]
    assert names(tasks=["reach-9"]) == ["retried", "short-bad", "short-good", "tie-a", "tie-b"]
    assert names(dataset="arith", split="test", step_max=3) == ["retried", "tie-a", "tie-b"]
    assert names(tags=["easy"]) == ["best", "eval", "eval-twin", "middle", "worst"]
    assert names(per_task=1) == ["best", "llm", "tie-a"]  # the first stored of each task (and the one with none)
    assert names(dedupe=True, runs=["train-eval"]) == ["eval"]  # its twin has the same trajectory


def test_only_the_latest_attempt_unless_told_and_llm_spans_give_the_conversation(data, tmp_path):
    store, ids = data
    path = tmp_path / "chat.jsonl"
    store.export("openai-chat", {"tasks": ["reach-9"], "step_min": 3, "step_max": 3}, out=path)
    assert orjson.loads(path.read_bytes())["messages"][0]["content"] == "Reach 9 from 1.\n\nsecond try"
    store.export("openai-chat", {"tasks": ["reach-9"], "step_min": 3, "step_max": 3, "latest_attempt": False}, out=path)
    assert [m["content"] for m in orjson.loads(path.read_bytes())["messages"]] == [
        "Reach 9 from 1.\n\nfirst try", '{"n":0,"type":"add"}', "second try", '{"n":8,"type":"add"}']
    store.export("openai-chat", {"runs": ["other"]}, out=path)
    assert orjson.loads(path.read_bytes())["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is 2+2?"},
        {"role": "assistant", "content": "4"}]
    without = store.export("openai-chat", {"runs": ["other"]}, out=path, messages={"spans": False})
    assert without.rows == 0 and without.skipped == {"no turns or LLM spans": 1}


def test_observations_as_tool_results_and_thinking_dropped(data, tmp_path):
    store, ids = data
    path = tmp_path / "tool.parquet"
    store.export("trl-lm-chat", {"runs": ["train"], "step_max": 1}, out=path, images="none",
                 messages={"observations": "tool", "thinking": "drop", "system": "You add."})
    messages = load(path, tmp_path / "cache")[0]["messages"]
    call = {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"n":2,"type":"add"}'}}
    assert messages[:4] == [
        {"role": "system", "content": "You add.", "tool_calls": None, "tool_call_id": None},
        {"role": "user", "content": ASKED, "tool_calls": None, "tool_call_id": None},
        {"role": "assistant", "content": "", "tool_calls": [call], "tool_call_id": None},
        {"role": "tool", "content": "at 3", "tool_calls": None, "tool_call_id": "call_0"}]


def test_embedded_screenshots_load_as_the_datasets_image_feature(data, tmp_path):
    store, ids = data
    path = tmp_path / "images.parquet"
    summary = store.export("trl-prompt-completion-chat", {"runs": ["train"], "step_max": 1}, out=path, images="embed")
    dataset = load(path, tmp_path / "cache")
    assert dataset.features["images"] == List(Image()) and summary.images == 1
    assert [len(row["images"]) for row in dataset] == [1, 0, 0]
    assert dataset[0]["images"][0].getpixel((0, 0)) == (10, 0, 0)


def test_an_empty_selection_writes_an_empty_file_and_says_so(data, tmp_path):
    store, _ = data
    path = tmp_path / "none.parquet"
    summary = store.export("trl-lm-chat", {"dataset": "no-such-dataset"}, out=path)
    assert (summary.rows, summary.rollouts, summary.skipped) == (0, 0, {})
    import pyarrow.parquet as pq

    assert pq.read_table(path).num_rows == 0 and pq.read_table(path).column_names == ["messages"]


@pytest.mark.parametrize(("format", "selection", "options", "error", "message"), [
    ("trl-sft", None, {}, InvalidInputError, "unknown export format 'trl-sft'; formats: trl-lm, trl-lm-chat"),
    ("verl", {"run": "train"}, {}, InvalidInputError, "unknown selection field(s) run; fields: runs, include_children"),
    ("verl", {"per_task": 0}, {}, InvalidInputError, "invalid selection: per_task"),
    ("verl", None, {"messages": {"thinking": "keep"}}, InvalidInputError, "invalid messages: thinking"),
    ("verl", None, {"images": "inline"}, InvalidInputError, "images must be one of files, embed, none"),
    ("verl", None, {"suffix": ".jsonl"}, InvalidInputError, "format verl is written to a .parquet file"),
    ("trl-lm", None, {"suffix": ".csv"}, InvalidInputError, "is written to a .jsonl or .parquet file"),
    ("trl-lm-chat", None, {"suffix": ".jsonl", "images": "embed"}, InvalidInputError, "need a .parquet file"),
    ("verl", {"runs": ["no-such-run"]}, {}, NotFoundError, "no run with id or name 'no-such-run'"),
])
def test_bad_input_is_refused_by_name_and_writes_nothing(data, tmp_path, format, selection, options, error, message):
    store, _ = data
    options = dict(options)
    path = tmp_path / f"out{options.pop('suffix', '.parquet')}"
    with pytest.raises(error) as raised:
        store.export(format, selection, out=path, **options)
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_fails_midway_leaves_no_file(tmp_path):
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'lost.db'}") as store:
        run = store.runs.create(name="train")
        recorded(store, run=run, turns=TWO_TURNS, reward=1.0)
        shot = store.artifacts.get(store.artifacts.links(turn_id=store.turns.query()[0].id)[0].sha256)
        Path(shot.location).unlink()  # its content lost (a folder not restored with the database, say)
        out = tmp_path / "out" / "sft.parquet"
        out.parent.mkdir()
        with pytest.raises(NotFoundError, match=f"the content of artifact {shot.sha256} is missing"):
            store.export("trl-lm-chat", out=out)
        assert [path.name for path in out.parent.iterdir() if path.is_file()] == []


def test_llm_spans_with_the_genai_message_lists_give_the_conversation_of_the_last_call(tmp_path):
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'spans.db'}") as store:
        claim = store.rollouts.start("2+2?")
        calls = [([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]}], "5"),
                 ([{"role": "user", "parts": [{"type": "text", "content": "2+2?"}]},
                   {"role": "assistant", "parts": [{"type": "text", "content": "5"}]},
                   {"role": "user", "parts": [{"type": "text", "content": "Check again."}]}], "4")]
        store.spans.add_many([
            {"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t", "span_id": f"s{n}",
             "name": "chat", "attributes": {
                 "gen_ai.input.messages": orjson.dumps(prompt).decode(),
                 "gen_ai.output.messages": orjson.dumps([{"role": "assistant", "parts": [
                     {"type": "reasoning", "content": "adding"}, {"type": "text", "content": answer}]}]).decode()}}
            for n, (prompt, answer) in enumerate(calls)])
        store.rollouts.update(claim.rollout.id, status="succeeded", reward=1.0)
        store.export("openai-chat", out=tmp_path / "chat.jsonl")
    assert orjson.loads((tmp_path / "chat.jsonl").read_bytes())["messages"] == [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"},
        {"role": "user", "content": "Check again."}, {"role": "assistant", "content": "4"}]
