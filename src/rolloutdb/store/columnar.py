"""Chat datasets to Parquet column by column: a page's turns read as columns and its message columns made with
Arrow's compute functions, where the general path (``export``) makes a Python object of every turn and message.
The rows are the very rows the general path writes (tests compare the two).

Taken for the formats whose rows are only the messages of a trajectory recorded as turns (``COLUMNAR``), with
observations as user messages, without screenshots, ``per_task`` or ``dedupe``; a page where a rollout has an
LLM span's conversation goes the general way. Stored JSON text becomes message text here as ``text`` makes it:
a JSON string without escapes is its text unquoted (a slice), and only the other values (objects, arrays, numbers,
strings with escapes) are decoded and encoded again in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .export import TURN_COLUMNS, ParquetWriter, latest_attempts, sorted_json, span_calls, text, turn_statement

if TYPE_CHECKING:
    from .export import Export

COLUMNAR = frozenset({"trl-lm-chat", "trl-prompt-completion-chat"})
READ = ("rollout_id", "observation", "thinking", "action")  # of each turn
ROLES = pa.array(["system", "user", "assistant"])
SYSTEM, USER, ASSISTANT = 0, 1, 2


def takes(job: Export, format: str) -> bool:
    """Whether this export's pages (to Parquet) are written column by column."""
    return (format in COLUMNAR and not job.with_images
            and job.policy.observations == "user" and job.selection.per_task is None and not job.selection.dedupe)


def write_page(job: Export, writer: ParquetWriter, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Writes the rows of these rollouts (a page's, with the tags asked for); False, writing nothing, when one
    of them has an LLM span's conversation (which the general path makes)."""
    ids = [row["id"] for row in rows]
    store = job.store
    latest = latest_attempts(job, rows)
    with store.reading() as connection:
        if job.span_conversations and span_calls(connection, store, job, ids, latest):
            return False
        with connection.execute(turn_statement(job, ids, [TURN_COLUMNS[name] for name in READ], latest)) as result:
            found = result.cursor.fetchall()  # the driver's tuples: SQLAlchemy's rows took a third more time
    columns = zip(*found) if found else [()] * len(READ)
    turns = pa.Table.from_arrays([pa.array(column, pa.string()) for column in columns], names=list(READ))
    batch = _batch(job, writer.schema, rows, turns)
    job.skip("no turns or LLM spans", len(rows) - batch.num_rows)
    writer.write_batch(batch)
    job.rows += batch.num_rows
    job.kept_rollouts += batch.num_rows
    return True


def _batch(job: Export, schema: Any, rows: Sequence[Mapping[str, Any]], turns: pa.Table) -> pa.RecordBatch:
    """The rows of the rollouts that have turns: each one's opening (system message, then the task and the first
    observation as the user's), then each turn's observation (after the first) and action."""
    position = pc.index_in(turns.column("rollout_id"), value_set=pa.array([row["id"] for row in rows])).to_numpy()
    order = np.argsort(position, kind="stable")  # rollouts in page order, each one's turns in theirs
    position = position[order]
    observations = message_texts(turns.column("observation").take(order))
    actions = pc.fill_null(message_texts(turns.column("action").take(order)), "")
    if job.policy.thinking == "inline":
        thinking = turns.column("thinking").take(order)
        wrapped = pc.binary_join_element_wise("<think>", thinking, "</think>\n", actions, "")
        actions = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(thinking), 0), False), wrapped, actions)
    count = len(position)
    first = np.ones(count, bool)
    first[1:] = position[1:] != position[:-1]
    starts = np.flatnonzero(first)  # each kept rollout's first turn
    kept = [rows[index] for index in position[starts]]
    firsts = observations.take(pa.array(starts)).to_pylist()
    openings = ["\n\n".join(part for part in (_asked(row), seen or "") if part) for row, seen in zip(kept, firsts)]
    system = job.policy.system
    contents = pa.concat_arrays([pa.array(openings, pa.string()), _chunk(observations), _chunk(actions),
                                 pa.array([system], pa.string())])
    # Each turn's two slots (its observation, then its action) in the columns above, the observation's kept
    # unless it is the first turn's or none; before each rollout's first turn, its opening (and system message).
    shown = ~first & _chunk(observations).is_valid().to_numpy(zero_copy_only=False)
    turn = np.arange(count)
    body_source = np.stack([len(kept) + turn, len(kept) + count + turn], axis=1).ravel()
    body_role = np.tile([USER, ASSISTANT], count)
    body_kept = np.stack([shown, np.ones(count, bool)], axis=1).ravel()
    head_source = np.arange(len(kept))
    head_role = np.full(len(kept), USER)
    heads = 1
    if system:
        head_source = np.stack([np.full(len(kept), len(contents) - 1), head_source], axis=1).ravel()
        head_role = np.stack([np.full(len(kept), SYSTEM), head_role], axis=1).ravel()
        heads = 2
    per_rollout_body = np.add.reduceat(1 + shown, starts) if count else np.zeros(0, np.int64)
    kind = schema.field(0).type  # every column is a list of messages
    columns = {}
    for name in schema.names:
        if name == "prompt":
            columns[name] = _lists(kind, contents, head_source, head_role, np.full(len(kept), heads))
        elif name == "completion":
            body = body_kept.nonzero()[0]
            columns[name] = _lists(kind, contents, body_source[body], body_role[body], per_rollout_body)
        else:  # the whole conversation
            where = np.repeat(2 * starts, heads)
            source = np.insert(body_source, where, head_source)
            role = np.insert(body_role, where, head_role)
            whole = np.insert(body_kept, where, True).nonzero()[0]
            columns[name] = _lists(kind, contents, source[whole], role[whole], per_rollout_body + heads)
    return pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)


def _lists(kind: Any, contents: pa.Array, source: np.ndarray, role: np.ndarray, counts: np.ndarray) -> pa.Array:
    """A list column of messages: message ``i`` of the rollouts in turn has content ``contents[source[i]]`` and
    role ``role[i]``; rollout ``r`` has ``counts[r]`` of them."""
    messages = pa.StructArray.from_arrays([ROLES.take(pa.array(role)), contents.take(pa.array(source))],
                                          fields=list(kind.value_type))
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), messages, type=kind)


def _asked(row: Mapping[str, Any]) -> str:
    return row["task_instruction"] if row["task_instruction"] is not None else text(row["input"])


def _chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def message_texts(stored: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Stored JSON texts as message texts (``text`` of their values), null for SQL NULL and JSON null: a string
    without escapes unquoted, objects and arrays encoded again (keys sorted) in a loop of C calls, the rest (numbers,
    strings with escapes) through ``text``."""
    stored = _chunk(stored)
    quoted = pc.fill_null(pc.and_(pc.starts_with(stored, '"'), pc.invert(pc.match_substring(stored, "\\"))), False)
    texts = pc.if_else(quoted, pc.utf8_slice_codeunits(stored, 1, -1), pa.scalar(None, pa.string()))
    composite = pc.fill_null(pc.match_substring_regex(stored, r"^[\[{]"), False)
    if pc.any(composite).as_py():
        encoded = list(map(sorted_json, map(orjson.loads, stored.filter(composite).to_pylist())))  # loops in C
        texts = pc.replace_with_mask(texts, composite, pa.array(encoded, pa.binary()).cast(pa.string()))
    others = pc.and_(pc.invert(pc.or_(quoted, composite)), stored.is_valid())
    if pc.any(others).as_py():
        converted = [None if (value := orjson.loads(raw)) is None else text(value)
                     for raw in stored.filter(others).to_pylist()]
        texts = pc.replace_with_mask(texts, others, pa.array(converted, pa.string()))
    return texts
