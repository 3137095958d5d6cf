"""Training data out: stored rollouts as the datasets TRL, verl and OpenAI fine-tuning read, as JSONL or Parquet.

The rollouts of a selection are read in pages (their keys in batches by keyset pagination on the rollout id, or
on group and id for preference pairs, each page by its ids): each page's turns, spans and screenshots are fetched
with it and its rows written before the next page is read, so memory stays flat however many rollouts there are.
Only ``per_task`` and ``dedupe`` keep something as it goes (a count per task, a 16-byte digest per rollout or pair
kept). A page's messages are kept flat (``Page``), and Parquet takes its message columns from there at once.
The chat formats most trained on are written to Parquet column by column instead (``columnar``), the same rows.

A trajectory becomes chat messages as ``MessagePolicy`` says (README, "Training data"): the task's instruction
(else the rollout's input) and the first turn's observation are the user's prompt; each turn's action is an
assistant message (its thinking first, inline, unless dropped); each later observation is a user message, or a
tool message answering the previous action as a tool call. When the rollout's spans carry GenAI prompt and
completion attributes, the conversation is that of its last LLM call instead: its prompt, then its completion.
The prompt is what comes before the first assistant message, the completion the rest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from pydantic import ValidationError
from sqlalchemy import Text, and_, cast, func, null, or_, select

from ..errors import InvalidInputError
from ..records import ExportSummary, MessagePolicy, Selection
from ..schema import artifact_links, artifacts, attempts, rollouts, runs, spans, tasks, turns, validators
from .base import collector_paused, one_of, validation_message

if TYPE_CHECKING:
    from . import Store

PAGE = 500  # rollouts per page: their turns, spans and screenshots are in memory at once
KEYS = 50_000  # the keys of selected rollouts read at once (a few megabytes), from which pages are read
IMAGE_MODES = ("files", "embed", "none")
SCREENSHOT = "screenshot"
IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


# -- one rollout, read -------------------------------------------------------------------------------------


class Page:
    """The messages of a page of trajectories, flat: one list of roles and one of contents, which the ``Messages``
    of its trajectories are views of. Parquet takes its message columns from these lists as they are (one Arrow
    array each, no dict a message), where a list of dicts a message would be converted one by one."""

    __slots__ = ("roles", "contents", "_arrow")

    def __init__(self) -> None:
        self.roles: list[str] = []
        self.contents: list[str] = []
        self._arrow: Any = None

    def arrow(self, kind: Any) -> Any:
        """Every message of the page as one Arrow struct array of type ``kind`` (role, content)."""
        import pyarrow as pa

        if self._arrow is None:
            self._arrow = pa.StructArray.from_arrays(
                [pa.array(self.roles, pa.string()), pa.array(self.contents, pa.string())], fields=list(kind))
        return self._arrow


class Messages(Sequence):
    """Some consecutive messages of a page (a trajectory's, or its prompt or completion): a sequence of
    ``{"role", "content"}`` dicts made as they are read; JSON and Parquet writers take them whole."""

    __slots__ = ("page", "start", "stop")

    def __init__(self, page: Page, start: int, stop: int) -> None:
        self.page, self.start, self.stop = page, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.as_list()[index]
            return Messages(self.page, self.start + start, self.start + max(start, stop))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return {"role": self.page.roles[self.start + index], "content": self.page.contents[self.start + index]}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        page = self.page
        for role, content in zip(page.roles[self.start:self.stop], page.contents[self.start:self.stop]):
            yield {"role": role, "content": content}

    def first(self, role: str) -> int:
        """The position of the first message of ``role``, or the number of messages."""
        try:
            return self.page.roles.index(role, self.start, self.stop) - self.start
        except ValueError:
            return len(self)

    def as_list(self) -> list[dict[str, Any]]:
        return list(self)


def plain(value: Any) -> Any:
    """``orjson.dumps``'s ``default``: ``Messages`` as the list of dicts they stand for."""
    if isinstance(value, Messages):
        return value.as_list()
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass
class Trajectory:
    """One selected rollout with what the rows are made of."""

    row: Mapping[str, Any]  # the rollout's columns, its task's (task_*), validator's (validator_*) and run name
    turns: list[Any]  # ``Turn``s
    messages: Sequence[dict[str, Any]]  # the whole conversation: ``Messages``, or a list with tool messages
    images: list[Any] = field(default_factory=list)  # per message, in order: the screenshots shown with it

    @property
    def prompt(self) -> Sequence[dict[str, Any]]:
        return self.messages[:self._split]

    @property
    def completion(self) -> Sequence[dict[str, Any]]:
        return self.messages[self._split:]

    @property
    def _split(self) -> int:
        if isinstance(self.messages, Messages):
            return self.messages.first("assistant")
        return next((i for i, message in enumerate(self.messages) if message["role"] == "assistant"),
                    len(self.messages))

    def images_of(self, messages: int) -> list[Any]:
        """The screenshots shown with the first ``messages`` messages."""
        return [image for shown in self.images[:messages] for image in shown]


# A value as compact JSON with sorted keys (PostgreSQL's JSONB keeps no key order: sorted, the text is the same from
# either backend); a partial, called in C, since the columnar export calls it twice a turn.
sorted_json: Callable[[Any], bytes] = functools.partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)


def text(value: Any) -> str:
    """A stored JSON value as message text: text as it is, anything else as ``sorted_json``."""
    if value is None:
        return ""
    return value if isinstance(value, str) else sorted_json(value).decode()


def turn_conversation(row: Mapping[str, Any], turns: Sequence[Any], policy: MessagePolicy,
                      shots: Mapping[str, list[Any]], page: Page) -> tuple[Sequence[dict[str, Any]], list[list[Any]]]:
    """The messages of a trajectory recorded as turns, and the screenshots shown with each message: as
    ``Messages`` of ``page`` when observations are user messages, else as a list of dicts."""
    asked = row["task_instruction"] if row["task_instruction"] is not None else text(row["input"])
    first = text(turns[0].observation) if turns else ""
    opening = "\n\n".join(part for part in (asked, first) if part)
    if policy.observations == "tool":
        return _tool_conversation(opening, turns, policy, shots)
    start = len(page.roles)
    roles, contents = page.roles, page.contents
    if policy.system:
        roles.append("system")
        contents.append(policy.system)
    roles.append("user")
    contents.append(opening)
    images: list[list[Any]] = ([[]] if policy.system else []) + [list(shots.get(turns[0].id, ())) if turns else []]
    add_role, add_content, add_images = roles.append, contents.append, images.append
    thinking, with_images = policy.thinking == "inline", bool(shots)
    for index, turn in enumerate(turns):  # the loop of every export: once a turn, kept lean
        observation = turn.observation
        if index and observation is not None:
            add_role("user")
            add_content(observation if type(observation) is str else text(observation))
            if with_images:
                add_images(list(shots[turn.id]) if turn.id in shots else [])
        action = turn.action
        said = action if type(action) is str else text(action)
        add_role("assistant")
        add_content(f"<think>{turn.thinking}</think>\n{said}" if thinking and turn.thinking else said)
        if with_images:
            add_images([])
    return Messages(page, start, len(roles)), images if with_images else []


def _tool_conversation(opening: str, turns: Sequence[Any], policy: MessagePolicy,
                       shots: Mapping[str, list[Any]]) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Observations after the first as tool messages answering the action before, each action a tool call."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": policy.system}] if policy.system else []
    images: list[list[Any]] = [[] for _ in messages]
    messages.append({"role": "user", "content": opening})
    images.append(list(shots.get(turns[0].id, ())) if turns else [])
    thinking = policy.thinking == "inline"
    for index, turn in enumerate(turns):
        if index and turn.observation is not None:
            messages.append({"role": "tool", "content": text(turn.observation), "tool_calls": None,
                             "tool_call_id": f"call_{index - 1}"})
            images.append(list(shots[turn.id]) if turn.id in shots else [])
        action = turn.action
        name = action.get("type") or action.get("name") if isinstance(action, dict) else None
        call = {"id": f"call_{index}", "type": "function",
                "function": {"name": str(name or "action"), "arguments": text(action)}}
        messages.append({"role": "assistant", "content": f"<think>{turn.thinking}</think>" if thinking and turn.thinking
                         else "", "tool_calls": [call], "tool_call_id": None})
        images.append([])
    return messages, images


def span_conversation(attributes: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The messages of one LLM call from its GenAI attributes, prompt then completion: the indexed ones
    (``gen_ai.prompt.0.role``, ``gen_ai.prompt.0.content``, ``gen_ai.completion.0...``) or the JSON message lists
    (``gen_ai.input.messages``, ``gen_ai.output.messages``); None when the span has no completion."""
    prompt, completion = _indexed(attributes, "gen_ai.prompt"), _indexed(attributes, "gen_ai.completion")
    if not completion:
        prompt, completion = _listed(attributes.get("gen_ai.input.messages")), _listed(attributes.get("gen_ai.output.messages"))
    return prompt + completion if completion else None


def _indexed(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    messages = []
    for index in range(len(attributes)):
        role = attributes.get(f"{prefix}.{index}.role")
        if role is None:
            break
        messages.append({"role": str(role), "content": text(attributes.get(f"{prefix}.{index}.content"))})
    return messages


def _listed(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    if not isinstance(value, list):
        return []
    messages = []
    for item in value:
        if isinstance(item, dict) and "role" in item:
            parts = item.get("parts")
            content = ("".join(str(part.get("content", "")) for part in parts if isinstance(part, dict)
                               and part.get("type") == "text") if isinstance(parts, list) else text(item.get("content")))
            messages.append({"role": str(item["role"]), "content": content})
    return messages


# -- the formats -------------------------------------------------------------------------------------------


def label(turn: Any) -> bool | None:
    """A turn's label: its success when recorded, else whether its reward is above 0; None without either."""
    if turn.success is not None:
        return bool(turn.success)
    return None if turn.reward is None else turn.reward > 0


def joined(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages as plain text, for the standard (not conversational) formats: their contents, a blank line apart."""
    return "\n\n".join(message["content"] for message in messages if message["content"])


def ground_truth(row: Mapping[str, Any]) -> str:
    """The task's ground truth as text: its metadata's ``ground_truth``, else its input."""
    metadata = row["task_metadata"] or {}
    return text(metadata["ground_truth"] if "ground_truth" in metadata else row["task_input"])


def validator_of(row: Mapping[str, Any]) -> str | None:
    if row["validator_name"] is None:
        return None
    return text({"name": row["validator_name"], "kind": row["validator_kind"], "config": row["validator_config"]})


Rows = Callable[["Trajectory", "Export"], Iterator[dict[str, Any]]]


def _lm(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"text": joined(t.messages)}


def _lm_chat(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"messages": t.messages, **e.images(t, len(t.messages))}


def _prompt_completion(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"prompt": joined(t.prompt), "completion": joined(t.completion)}


def _prompt_completion_chat(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"prompt": t.prompt, "completion": t.completion, **e.images(t, len(t.messages))}


def _prompt_only(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"prompt": joined(t.prompt), "ground_truth": ground_truth(t.row), "validator": validator_of(t.row)}


def _prompt_only_chat(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"prompt": t.prompt, **e.images(t, len(t.prompt)), "ground_truth": ground_truth(t.row),
           "validator": validator_of(t.row)}


def _per_turn(t: Trajectory, e: Export, chat: bool) -> Iterator[dict[str, Any]]:
    """One row per labelled turn: the conversation up to its action, the action, its label."""
    assistants = [index for index, message in enumerate(t.messages) if message["role"] == "assistant"]
    for index, turn in zip(assistants, t.turns):
        good = label(turn)
        if good is None:
            e.skip("turn without a reward")
            continue
        before, action = t.messages[:index], t.messages[index:index + 1]
        yield ({"prompt": before, "completion": action, "label": good} if chat
               else {"prompt": joined(before), "completion": joined(action), "label": good})


def _stepwise(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    labels = [label(turn) for turn in t.turns]
    if None in labels:
        e.skip("turn without a reward")
        return
    steps = [message["content"] for message in t.completion if message["role"] == "assistant"]
    yield {"prompt": joined(t.prompt), "completions": steps, "labels": labels}


def _verl(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    row = t.row
    yield {"data_source": row["task_dataset"] or row["run_name"] or "rolloutdb", "prompt": t.prompt,
           **e.images(t, len(t.prompt)),
           "ability": str((row["task_metadata"] or {}).get("ability", "agent")),
           "reward_model": {"style": "rule", "ground_truth": ground_truth(row)},
           "extra_info": {"split": row["task_split"] or row["mode"] or "train", "index": e.next_index,
                          "rollout_id": row["id"]}}


def _openai_chat(t: Trajectory, e: Export) -> Iterator[dict[str, Any]]:
    yield {"messages": t.messages}


def _pair(chosen: Trajectory, rejected: Trajectory, shape: str) -> dict[str, Any] | None:
    """A preference row in ``shape`` ("standard", "chat" or "openai"); None when OpenAI cannot take it."""
    if shape == "openai":
        if len(chosen.completion) != 1 or len(rejected.completion) != 1:
            return None
        return {"input": {"messages": chosen.prompt}, "preferred_output": chosen.completion,
                "non_preferred_output": rejected.completion}
    if shape == "chat":
        return {"prompt": chosen.prompt, "chosen": chosen.completion, "rejected": rejected.completion}
    return {"prompt": joined(chosen.prompt), "chosen": joined(chosen.completion), "rejected": joined(rejected.completion)}


@dataclass(frozen=True)
class Format:
    rows: Rows | None  # None: preference pairs, built from groups (``pairs`` says their shape)
    columns: tuple[tuple[str, str], ...]  # (name, kind): see ``arrow_schema``; "images" only with screenshots
    container: str | None = None  # "jsonl" or "parquet" when the consumer takes only that; else by the file's suffix
    pairs: str = ""
    per_turn: bool = False  # rows are made of turns: LLM spans are not used
    prompt_only: bool = False  # a rollout needs no completion


TEXT, CHAT = ("prompt", "text"), ("prompt", "messages")
FORMATS: dict[str, Format] = {
    "trl-lm": Format(_lm, (("text", "text"),)),
    "trl-lm-chat": Format(_lm_chat, (("messages", "messages"), ("images", "images"))),
    "trl-prompt-completion": Format(_prompt_completion, (TEXT, ("completion", "text"))),
    "trl-prompt-completion-chat": Format(_prompt_completion_chat, (CHAT, ("completion", "messages"),
                                                                   ("images", "images"))),
    "trl-prompt-only": Format(_prompt_only, (TEXT, ("ground_truth", "text"), ("validator", "text")), prompt_only=True),
    "trl-prompt-only-chat": Format(_prompt_only_chat, (CHAT, ("images", "images"), ("ground_truth", "text"),
                                                       ("validator", "text")), prompt_only=True),
    "trl-preference": Format(None, (TEXT, ("chosen", "text"), ("rejected", "text")), pairs="standard"),
    "trl-preference-chat": Format(None, (CHAT, ("chosen", "messages"), ("rejected", "messages")), pairs="chat"),
    "trl-unpaired-preference": Format(lambda t, e: _per_turn(t, e, chat=False),
                                      (TEXT, ("completion", "text"), ("label", "flag")), per_turn=True),
    "trl-unpaired-preference-chat": Format(lambda t, e: _per_turn(t, e, chat=True),
                                           (CHAT, ("completion", "messages"), ("label", "flag")), per_turn=True),
    "trl-stepwise": Format(_stepwise, (TEXT, ("completions", "texts"), ("labels", "flags")), per_turn=True),
    "verl": Format(_verl, (("data_source", "text"), CHAT, ("images", "images"), ("ability", "text"),
                           ("reward_model", "reward_model"), ("extra_info", "extra_info")),
                   container="parquet", prompt_only=True),
    "openai-chat": Format(_openai_chat, (("messages", "messages"),), container="jsonl"),
    "openai-preference": Format(None, (("input", "input"), ("preferred_output", "messages"),
                                       ("non_preferred_output", "messages")), container="jsonl", pairs="openai"),
}


def arrow_schema(form: Format, policy: MessagePolicy, images: str, with_images: bool):
    """The Parquet schema of a format's rows, fixed before the first row (a page without some value still fits),
    with the ``datasets`` features in its metadata when images are embedded (the Image feature)."""
    import pyarrow as pa

    message = [("role", pa.string()), ("content", pa.string())]
    if policy.observations == "tool":
        call = pa.struct([("id", pa.string()), ("type", pa.string()),
                          ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
        message += [("tool_calls", pa.list_(call)), ("tool_call_id", pa.string())]
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())]) if images == "embed" else pa.string()
    kinds = {"text": pa.string(), "messages": pa.list_(pa.struct(message)), "texts": pa.list_(pa.string()),
             "flag": pa.bool_(), "flags": pa.list_(pa.bool_()), "images": pa.list_(image),
             "reward_model": pa.struct([("style", pa.string()), ("ground_truth", pa.string())]),
             "extra_info": pa.struct([("split", pa.string()), ("index", pa.int64()), ("rollout_id", pa.string())])}
    kinds["input"] = pa.struct([("messages", kinds["messages"])])
    schema = pa.schema([(name, kinds[kind]) for name, kind in form.columns if name != "images" or with_images])
    if images != "embed" or "images" not in schema.names:
        return schema
    features = {name: _feature(schema.field(name).type) for name in schema.names}
    features["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    return schema.with_metadata({b"huggingface": orjson.dumps({"info": {"features": features}})})


# -- writing -----------------------------------------------------------------------------------------------


def checked_out(out: Any) -> tuple[Path, str | None]:
    """``out`` as the path of a file to write in an existing folder, and its container by its suffix (``"jsonl"``,
    ``"parquet"``, None for another); InvalidInputError when it is no path, names no existing folder, or is a
    Parquet file without pyarrow."""
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out is the path of the file to write, got {type(out).__name__}")
    path = Path(out)
    container = {".jsonl": "jsonl", ".parquet": "parquet"}.get(path.suffix)
    if container == "parquet" and importlib.util.find_spec("pyarrow") is None:  # an optional dependency
        raise InvalidInputError("writing Parquet needs pyarrow: pip install 'rolloutdb[export]' (or write .jsonl, "
                                "where the format allows it)")
    if not path.parent.is_dir():
        raise InvalidInputError(f"no folder {str(path.parent)!r:.200} to write {path.name!r:.80} in")
    return path, container


@contextlib.contextmanager
def written_whole(path: Path, writer: Any) -> Iterator[Any]:
    """``writer`` (writing ``path`` + ``.partial``), closed and moved to ``path`` when the block ends; closed and
    removed when it fails, so nothing half-written is left behind."""
    temporary = path.with_name(path.name + ".partial")
    try:
        yield writer
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(temporary, path)


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.file.write(b"".join(orjson.dumps(row, default=plain) + b"\n" for row in rows))

    def close(self) -> None:
        self.file.close()


class ParquetWriter:
    """Rows to Parquet, one row group per page, column by column: message columns from their pages' flat lists."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        if rows:
            self.writer.write_batch(pa.RecordBatch.from_arrays(
                [_arrow_column([row.get(field.name) for row in rows], field.type) for field in self.schema],
                schema=self.schema))

    def write_batch(self, batch: Any) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()


def _arrow_column(values: list[Any], kind: Any) -> Any:
    """One column of a page's rows as an Arrow array of type ``kind``: a column of ``Messages`` of one page taken
    from that page's flat lists at once, anything else converted value by value."""
    import pyarrow as pa

    pages = {id(value.page) for value in values if isinstance(value, Messages)}
    if not values or len(pages) != 1 or not all(isinstance(value, Messages) for value in values):
        return pa.array([plain(value) if isinstance(value, Messages) else value for value in values], type=kind)
    page = values[0].page
    first, offsets, contiguous = values[0].start, [0], True
    for value in values:
        contiguous = contiguous and value.start == first + offsets[-1]
        offsets.append(offsets[-1] + value.stop - value.start)
    messages = page.arrow(kind.value_type)
    if contiguous:  # a whole conversation each: the page's messages as they are
        messages = messages.slice(first, offsets[-1])
    else:  # prompts or completions: some of each conversation's messages
        messages = messages.take(pa.array([i for value in values for i in range(value.start, value.stop)], pa.int64()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), messages, type=kind)


def _feature(kind: Any) -> dict[str, Any]:
    """The ``datasets`` feature of an Arrow type, as ``Features.to_dict`` writes it."""
    import pyarrow as pa

    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return {"feature": _feature(kind.value_type), "_type": "List"}
    if pa.types.is_struct(kind):
        return {kind.field(i).name: _feature(kind.field(i).type) for i in range(kind.num_fields)}
    names = {pa.string(): "string", pa.large_string(): "large_string", pa.int64(): "int64", pa.float64(): "float64",
             pa.bool_(): "bool", pa.null(): "null", pa.binary(): "binary"}
    return {"dtype": names.get(kind, str(kind)), "_type": "Value"}


# -- the export --------------------------------------------------------------------------------------------


class Export:
    """One export in progress: the rows written, the rollouts kept and skipped."""

    def __init__(self, store: Store, form: Format, selection: Selection, policy: MessagePolicy, images: str,
                 out: Path) -> None:
        self.store, self.form, self.selection, self.policy, self.image_mode = store, form, selection, policy, images
        self.out = out
        self.rows = 0
        self.next_index = 0  # the number of the next row, as verl's extra_info.index gives it
        self.kept_rollouts = 0
        self.image_count = 0
        self.skipped: dict[str, int] = {}
        self.per_task: dict[str | None, int] = {}
        self.seen: set[bytes] = set()
        self.with_images = False
        self.columnar = False  # pages written column by column (store/columnar.py)
        self.span_conversations = False  # the selection has spans, which may hold an LLM call's conversation
        self.pending: list[Trajectory] = []  # preference pairs: the last group of a page, which may go on
        self.image_folder = out.with_name(out.name + ".images")

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    def images(self, t: Trajectory, messages: int) -> dict[str, Any]:
        """The ``images`` column, when this export has one: the screenshots of the first ``messages`` messages."""
        return {"images": t.images_of(messages)} if self.with_images else {}

    def admit(self, task_id: str | None, content: Any) -> bool:
        """Whether a row may be written under ``per_task`` and ``dedupe`` (counting it if so)."""
        if self.selection.per_task is not None and self.per_task.get(task_id, 0) >= self.selection.per_task:
            self.skip("per-task limit")
            return False
        if self.selection.dedupe:
            encoded = orjson.dumps(content, default=plain, option=orjson.OPT_SORT_KEYS)
            digest = hashlib.blake2b(encoded, digest_size=16).digest()
            if digest in self.seen:
                self.skip("duplicate trajectory")
                return False
            self.seen.add(digest)
        self.per_task[task_id] = self.per_task.get(task_id, 0) + 1
        return True


def export_rollouts(store: Store, format: str, selection: Selection | Mapping[str, Any] | None, out: str | os.PathLike, *,
           messages: MessagePolicy | Mapping[str, Any] | None = None, images: str = "files",
           on_progress: Callable[[int, int], None] | None = None) -> ExportSummary:
    """See ``Store.export``."""
    form = FORMATS.get(format) if isinstance(format, str) else None
    if form is None:
        raise InvalidInputError(f"unknown export format {format!r:.80}; formats: {', '.join(FORMATS)} (and a bundle "
                                "of the rows as stored: store.export_bundle, `rolloutdb export bundle`)")
    chosen = checked_model(Selection, selection, "selection")
    policy = checked_model(MessagePolicy, messages, "messages")
    if images not in IMAGE_MODES:
        raise InvalidInputError(f"images must be one of {', '.join(IMAGE_MODES)}, got {images!r:.80}")
    path, container = checked_out(out)
    if container is None or (form.container and form.container != container):
        wanted = f".{form.container}" if form.container else ".jsonl or .parquet"
        raise InvalidInputError(f"format {format} is written to a {wanted} file; out is {str(path)!r:.200}")
    if images == "embed" and container != "parquet":
        raise InvalidInputError("embedded images (the datasets Image feature) need a .parquet file; JSONL takes "
                                "images='files'")
    conditions = selection_conditions(store, chosen)
    job = Export(store, form, chosen, policy, images, path)
    job.with_images = ("images", "images") in form.columns and images != "none" and _has_screenshots(store, conditions)
    job.span_conversations = policy.spans and _has_spans(store, conditions)
    if container == "parquet":
        from . import columnar

        job.columnar = columnar.takes(job, format)
    with store.reading() as connection:
        total = connection.execute(select(func.count()).select_from(selected_join()).where(*conditions)).scalar_one()
    temporary = path.with_name(path.name + ".partial")
    with written_whole(path, ParquetWriter(temporary, arrow_schema(form, policy, images, job.with_images))
                       if container == "parquet" else JsonlWriter(temporary)) as writer:
        done, pages = 0, _pages(store, conditions, by_group=form.rows is None)
        while True:
            # A page's rows are many new objects without cycles (see collector_paused), all gone when
            # _write_page returns: the collector, back on, finds none of them to look through.
            with collector_paused():
                read = _write_page(job, writer, next(pages, None))
            if read is None:
                break
            done += read
            if on_progress is not None:
                on_progress(done, total)
        if form.rows is None:
            rows = _pairs(job, [], final=True)
            writer.write(rows)
            job.rows += len(rows)
    return ExportSummary(format=format, path=str(path), rows=job.rows, rollouts=job.kept_rollouts,
                         skipped=dict(sorted(job.skipped.items())), images=job.image_count)


def _write_page(job: Export, writer: JsonlWriter | ParquetWriter, page: list[Mapping[str, Any]] | None) -> int | None:
    """Writes the rows of a page of selected rollouts; the rollouts it read, None after the last page."""
    if page is None:
        return None
    tagged = _tagged(job, page)
    if job.columnar and tagged:
        from . import columnar  # with pyarrow, which Parquet needs

        if columnar.write_page(job, writer, tagged):
            return len(page)
    trajectories = _read_page(job.store, job, tagged)
    rows = _pairs(job, trajectories, final=False) if job.form.rows is None else _singles(job, trajectories)
    writer.write(rows)
    job.rows += len(rows)
    return len(page)


def checked_model(model: type, value: Any, what: str) -> Any:
    if isinstance(value, model):
        return value
    if value is not None and not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} is a {model.__name__} or a mapping of its fields, got {type(value).__name__}")
    unknown = set(value or {}) - set(model.model_fields)
    if unknown:
        raise InvalidInputError(f"unknown {what} field(s) {', '.join(sorted(map(str, unknown)))}; "
                                f"fields: {', '.join(model.model_fields)}")
    try:
        return model.model_validate(dict(value or {}))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {validation_message(exc)}") from None


def selected_join():
    return (rollouts.outerjoin(tasks, tasks.c.id == rollouts.c.task_id)
            .outerjoin(validators, validators.c.id == tasks.c.validator_id)
            .outerjoin(runs, runs.c.id == rollouts.c.run_id))


def selection_conditions(store: Store, s: Selection) -> list[Any]:
    """The SQL conditions of a selection (all but tags, which are checked as rows are read)."""
    conditions: list[Any] = [rollouts.c.project_id == store.project_id, rollouts.c.status.in_(s.status)]
    if s.runs is not None:
        ids = [store.runs.get(name).id for name in s.runs]
        if s.include_children:
            with store.reading() as connection:
                ids += connection.execute(select(runs.c.id).where(
                    runs.c.project_id == store.project_id, runs.c.parent_run_id.in_(ids))).scalars().all()
        conditions.append(rollouts.c.run_id.in_(ids))
    if s.step_min is not None:
        conditions.append(rollouts.c.step >= s.step_min)
    if s.step_max is not None:
        conditions.append(rollouts.c.step <= s.step_max)
    if s.mode is not None:
        conditions.append(rollouts.c.mode.in_(s.mode))
    if s.success_only:
        conditions.append(rollouts.c.success.is_(True))
    if s.min_reward is not None:
        conditions.append(rollouts.c.reward >= s.min_reward)
    if s.tasks is not None:
        conditions.append(or_(tasks.c.external_id.in_(s.tasks), tasks.c.id.in_(s.tasks)))
    if s.dataset is not None:
        conditions.append(tasks.c.dataset == s.dataset)
    if s.split is not None:
        conditions.append(tasks.c.split == s.split)
    if s.ended_before is not None:
        conditions.append(rollouts.c.ended_at < s.ended_before)
    return conditions


def _has_screenshots(store: Store, conditions: list[Any]) -> bool:
    statement = (select(artifact_links.c.id)
                 .select_from(selected_join().join(turns, turns.c.rollout_id == rollouts.c.id)
                              .join(artifact_links, and_(artifact_links.c.owner_id == turns.c.id,
                                                         artifact_links.c.owner_type == "turn")))
                 .where(*conditions, artifact_links.c.role == SCREENSHOT).limit(1))
    with store.reading() as connection:
        return connection.execute(statement).first() is not None


def _has_spans(store: Store, conditions: list[Any]) -> bool:
    statement = (select(spans.c.id).select_from(selected_join().join(spans, spans.c.rollout_id == rollouts.c.id))
                 .where(*conditions).limit(1))
    with store.reading() as connection:
        return connection.execute(statement).first() is not None


def _as_text(column, name: str):
    """A JSON column read as its text (decoded by ``decoded``): orjson is several times faster than the driver's json
    module, which shows at ten and more turns a row."""
    return cast(column, Text).label(name)


RAW_JSON = frozenset({"input", "task_input", "task_tags", "task_metadata", "validator_config", "observation", "action"})
# What rows are made of, and no more: every column read is one more value decoded per row.
COLUMNS = [*(rollouts.c[name] for name in ("id", "run_id", "group_id", "task_id", "mode", "reward")),
           _as_text(rollouts.c.input, "input"), tasks.c.instruction.label("task_instruction"),
           tasks.c.dataset.label("task_dataset"), tasks.c.split.label("task_split"),
           *(_as_text(tasks.c[name], f"task_{name}") for name in ("input", "tags", "metadata")),
           validators.c.name.label("validator_name"), validators.c.kind.label("validator_kind"),
           _as_text(validators.c.config, "validator_config"), runs.c.name.label("run_name"),
           # by the unique key (rollout, sequence): one index look-up a row, where a query a page took longer
           select(attempts.c.id).where(attempts.c.rollout_id == rollouts.c.id,
                                       attempts.c.sequence == rollouts.c.attempt_count).scalar_subquery()
           .label("latest_attempt")]


class Turn(NamedTuple):
    """A turn, as much of it as rows are made of (None where ``turn_columns`` leaves a column out)."""

    id: str
    rollout_id: str
    attempt_id: str | None
    observation: Any
    thinking: str | None
    action: Any
    reward: float | None
    success: bool | None


TURN_COLUMNS = {name: _as_text(turns.c[name], name) if name in RAW_JSON else turns.c[name] for name in Turn._fields}


def turn_columns(job: Export) -> list[Any]:
    """The columns of ``Turn`` an export reads: its id for screenshots, its reward and success for formats made of
    turns, the rest always; NULL in place of the others (a value made for each of a million turns costs)."""
    wanted = {"rollout_id", "observation", "thinking", "action"}
    wanted |= {"id"} if job.with_images else set()
    wanted |= {"reward", "success"} if job.form.per_turn else set()
    return [column if name in wanted else null().label(name) for name, column in TURN_COLUMNS.items()]


def decoded_columns(rows) -> tuple[list[str], list[Any]]:
    """Result rows' names and columns, their JSON text decoded: column by column, one tight loop each (a branch per
    cell of every row costs more than the decoding)."""
    names = list(rows.keys())
    found = rows.all()  # fetched at once: row by row, the driver is asked once a row
    columns: list[Any] = list(zip(*found)) or [() for _ in names]
    loads = orjson.loads
    for index, name in enumerate(names):
        if name in RAW_JSON:
            columns[index] = [None if value is None else loads(value) for value in columns[index]]
    return names, columns


def decoded(rows) -> list[dict[str, Any]]:
    """Result rows as dicts, their JSON text decoded."""
    names, columns = decoded_columns(rows)
    return [dict(zip(names, values)) for values in zip(*columns)]


def _pages(store: Store, conditions: list[Any], *, by_group: bool) -> Iterator[list[Mapping[str, Any]]]:
    """The selected rollouts, a page at a time, by id (or by group, then id). Their keys are read ``KEYS`` at a time
    (keyset pagination, each batch starting after the last), each page's rows by their ids: the selection is
    sorted once a batch of keys, not once a page (which, on 100,000 rollouts, took longer than the export)."""
    key = (rollouts.c.group_id, rollouts.c.id) if by_group else (rollouts.c.id,)
    extra = [rollouts.c.group_id.is_not(None)] if by_group else []
    after: tuple[Any, ...] | None = None
    while True:
        beyond = [] if after is None else [_after(key, after)]
        with store.reading() as connection:
            keys = connection.execute(select(*key).select_from(selected_join()).where(*conditions, *extra, *beyond)
                                      .order_by(*key).limit(KEYS)).all()
        for first in range(0, len(keys), PAGE):
            ids = [found[-1] for found in keys[first:first + PAGE]]
            with store.reading() as connection:
                yield decoded(connection.execute(select(*COLUMNS).select_from(selected_join())
                                                 .where(one_of(rollouts.c.id, ids, store.backend)).order_by(*key)))
        if len(keys) < KEYS:
            return
        after = tuple(keys[-1])


def _after(key: Sequence[Any], position: Sequence[Any]):
    """Rows after ``position`` in the order of ``key`` (columns that are never null here)."""
    if len(key) == 1:
        return key[0] > position[0]
    return or_(key[0] > position[0], and_(key[0] == position[0], _after(key[1:], position[1:])))


def latest_attempts(job: Export, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each rollout's latest attempt, when the selection takes only those ({} otherwise)."""
    if not job.selection.latest_attempt:
        return {}
    return {row["id"]: row["latest_attempt"] for row in rows if row["latest_attempt"] is not None}


def turn_statement(job: Export, ids: list[str], columns: Sequence[Any], latest: Mapping[str, str]):
    """These columns of the turns of these rollouts that the selection takes (with ``latest_attempt``, those of
    no attempt or of a ``latest`` one: attempt ids are unique), each rollout's turns in order."""
    backend = job.store.backend
    current = ([or_(turns.c.attempt_id.is_(None), one_of(turns.c.attempt_id, list(latest.values()), backend))]
               if job.selection.latest_attempt else [])
    return (select(*columns).where(turns.c.project_id == job.store.project_id,
                                   one_of(turns.c.rollout_id, ids, backend), *current)
            .order_by(turns.c.rollout_id, turns.c.turn_index, turns.c.created_at))


def span_calls(connection, store: Store, job: Export, ids: list[str], latest: Mapping[str, str]
               ) -> dict[str, list[dict[str, Any]]]:
    """The conversation of each rollout's last LLM call (of its latest attempt, unless every attempt is taken)."""
    calls: dict[str, list[dict[str, Any]]] = {}
    for rollout_id, attempt_id, attributes in connection.execute(
            select(spans.c.rollout_id, spans.c.attempt_id, spans.c.attributes)
            .where(spans.c.project_id == store.project_id, one_of(spans.c.rollout_id, ids, store.backend))
            .order_by(spans.c.rollout_id, spans.c.attempt_id, spans.c.sequence_id)):
        current = not job.selection.latest_attempt or attempt_id is None or attempt_id == latest.get(rollout_id)
        conversation = span_conversation(attributes) if current else None
        if conversation:
            calls[rollout_id] = conversation  # the last LLM call's
    return calls


def _tagged(job: Export, page: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rollouts of a page whose task carries the tags asked for (the others counted as skipped)."""
    wanted_tags = set(job.selection.tags or ())
    rows = []
    for row in page:
        if wanted_tags and not wanted_tags <= set(row["task_tags"] or ()):
            job.skip("task without the tags")
        else:
            rows.append(row)
    return rows


def _read_page(store: Store, job: Export, rows: Sequence[Mapping[str, Any]]) -> list[Trajectory]:
    """The trajectories of some rollouts of a page: their turns, LLM spans and screenshots."""
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    policy = job.policy
    with store.reading() as connection:
        latest = latest_attempts(job, rows)
        by_rollout: dict[str, list[Turn]] = {}
        _, columns = decoded_columns(connection.execute(turn_statement(job, ids, turn_columns(job), latest)))
        for turn in map(Turn._make, zip(*columns)):
            if turn.rollout_id in by_rollout:
                by_rollout[turn.rollout_id].append(turn)
            else:
                by_rollout[turn.rollout_id] = [turn]
        calls = span_calls(connection, store, job, ids, latest) if job.span_conversations else {}
        shots = (_screenshots(store, job, connection, [turn.id for turns_ in by_rollout.values() for turn in turns_])
                 if job.with_images else {})
    flat = Page()
    system = [{"role": "system", "content": policy.system}] if policy.system else []
    trajectories = []
    for row in rows:
        found = by_rollout.get(row["id"], [])
        if row["id"] in calls and not job.form.per_turn:
            messages: Sequence[dict[str, Any]] = system + calls[row["id"]]
            if policy.observations == "user":  # as the turns' messages are
                start = len(flat.roles)
                flat.roles.extend(message["role"] for message in messages)
                flat.contents.extend(message["content"] for message in messages)
                messages = Messages(flat, start, len(flat.roles))
            images: list[list[Any]] = []
        elif found or job.form.prompt_only:
            messages, images = turn_conversation(row, found, policy, shots, flat)
        else:
            job.skip("no turns or LLM spans")
            continue
        trajectories.append(Trajectory(row, found, messages, images))
    return trajectories


def _screenshots(store: Store, job: Export, connection, turn_ids: list[str]) -> dict[str, list[Any]]:
    """The screenshots of these turns, as the ``images`` column holds them: a path relative to the exported file
    (the content written once into ``<file>.images/``), or ``{"bytes", "path"}`` to embed."""
    if not job.with_images or not turn_ids:
        return {}
    found: dict[str, list[Any]] = {}
    statement = (select(artifact_links.c.owner_id, artifacts.c.sha256, artifacts.c.media_type)
                 .join(artifacts, and_(artifacts.c.sha256 == artifact_links.c.sha256,
                                       artifacts.c.project_id == artifact_links.c.project_id))
                 .where(artifact_links.c.project_id == store.project_id, artifact_links.c.owner_type == "turn",
                        artifact_links.c.role == SCREENSHOT, one_of(artifact_links.c.owner_id, turn_ids, store.backend))
                 .order_by(artifact_links.c.owner_id, artifact_links.c.created_at, artifact_links.c.id))
    for owner_id, sha256, media_type in connection.execute(statement).all():
        name = sha256 + IMAGE_SUFFIXES.get(media_type, "")
        if job.image_mode == "embed":
            image: Any = {"bytes": store.artifacts.read(sha256), "path": name}
        else:
            target = job.image_folder / name
            if not target.exists():
                job.image_folder.mkdir(exist_ok=True)
                partial = target.with_name(name + ".partial")
                with store.artifacts.open(sha256) as source, open(partial, "wb") as sink:
                    while chunk := source.read(1 << 20):
                        sink.write(chunk)
                os.replace(partial, target)
            image = f"{job.image_folder.name}/{name}"
        job.image_count += 1
        found.setdefault(owner_id, []).append(image)
    return found


def _singles(job: Export, trajectories: list[Trajectory]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in trajectories:
        if not job.form.prompt_only and not t.completion:
            job.skip("no assistant message")
            continue
        if not job.admit(t.row["task_id"], t.messages):
            continue
        job.next_index = job.rows + len(out)
        made = list(job.form.rows(t, job))  # type: ignore[misc]
        out.extend(made)
        job.kept_rollouts += bool(made)
    return out


def _pairs(job: Export, trajectories: list[Trajectory], *, final: bool) -> list[dict[str, Any]]:
    """Preference pairs: in each group, the best against the worst reward of each task. Pages come in group
    order; the last group of a page may go on in the next, so it waits (``job.pending``) unless ``final``."""
    everything = job.pending + trajectories
    last_group = None if final or not everything else everything[-1].row["group_id"]
    complete = [t for t in everything if t.row["group_id"] != last_group]
    job.pending = [t for t in everything if t.row["group_id"] == last_group]
    buckets: dict[tuple[str, str | None], list[Trajectory]] = {}
    for t in complete:
        buckets.setdefault((t.row["group_id"], t.row["task_id"]), []).append(t)
    out = []
    for (_, task_id), members in buckets.items():
        rewarded = [t for t in members if t.row["reward"] is not None and t.completion]
        job.skip("no reward or no assistant message", len(members) - len(rewarded))
        if len(rewarded) < 2:
            job.skip("no other rollout of its task in its group", len(rewarded))
            continue
        rewarded.sort(key=lambda t: t.row["reward"])
        worst, best = rewarded[0], rewarded[-1]
        job.skip("neither best nor worst of its group", len(rewarded) - 2)
        margin = best.row["reward"] - worst.row["reward"]
        if margin <= 0:
            job.skip("tie", 2)
            continue
        if margin < job.selection.min_margin:
            job.skip("reward margin below min_margin", 2)
            continue
        pair = _pair(best, worst, job.form.pairs)
        if pair is None:
            job.skip("completion of several messages (OpenAI takes one)", 2)
            continue
        if not job.admit(task_id, pair):
            continue
        out.append(pair)
        job.kept_rollouts += 2
    return out
