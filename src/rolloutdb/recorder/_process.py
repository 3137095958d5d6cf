"""The recorder's writer process: applies batches of recorded operations through the store's batch API.

It runs apart from the training process, so the database's work (validation, SQL, waiting for a slow or
hanging server) never takes the training loop's interpreter lock. The recorder starts it with
``python -m rolloutdb.recorder._process READ_FD WRITE_FD`` and talks to it over two pipes: the first message
says where to write (the URL is never on a command line), then each request is a batch and each answer says
what was applied, what was refused and why, or that the database is away. A process that does not answer in
time is killed and replaced by the recorder; one whose recorder is gone sees the pipe close and exits.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from datetime import timedelta
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from ..errors import NotFoundError, RolloutDBError
from ..store import Store, connect
from ..store.recording import OPERATIONS, Rejection, describe, first_line
from ._frames import Entry, decode, split
from ._pipe import Receiver, send

HEARTBEAT_EVERY = timedelta(seconds=5)
WRITER_NICENESS = 10


class Applier:
    """Holds the store between requests and turns each request into an answer."""

    def __init__(self, url: str, project: str, token: str | None) -> None:
        self._url, self._project, self._token = url, project, token
        self._store: Store | None = None

    def handle(self, message: bytes) -> dict[str, Any]:
        header, _, body = message.partition(b"\n")
        request = orjson.loads(header)
        records, unreadable = _decode(split(body) if body else [])
        try:
            store = self._connect()
            result = store.recording.apply(records, heartbeat=request["heartbeat"]) if records else None
            answer = {"applied": 0, "rejected": [], **self._run_state(store, request.get("run"), request["heartbeat"])}
        except (RolloutDBError, DBAPIError, OSError) as exc:  # away, or unusable for now (an old schema, ...)
            self._disconnect()
            return {"outage": first_line(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug must not make the batch come back forever
            traceback.print_exc()
            return {"applied": 0, "rejected": [_refusal(index, record, f"internal error ({type(exc).__name__}: {exc}); "
                                                        "see the writer's traceback above")
                                               for index, record in enumerate(records)] + unreadable}
        if result is not None:
            answer.update(applied=result.applied, rejected=[rejection.model_dump() for rejection in result.rejected])
        answer["rejected"] += unreadable
        return answer

    def _connect(self) -> Store:
        if self._store is None:
            self._store = connect(self._url, project=self._project, token=self._token)
            # What the imports and the connection made lives as long as the process: out of the collector's
            # full passes, which otherwise scan it all a few times per batch (a third of the writer's CPU).
            gc.collect()
            gc.freeze()
        return self._store

    def _disconnect(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001 - a store whose server went away may fail to close cleanly
                pass
            self._store = None

    @staticmethod
    def _run_state(store: Store, run_name: str | None, heartbeat: bool) -> dict[str, Any]:
        """What the run was asked to do (pause, cancel) and the state it saved, keeping a live run's heartbeat
        fresh meanwhile. Nothing while the run is not recorded yet."""
        if run_name is None:
            return {}
        try:
            run = store.runs.get(run_name)
        except NotFoundError:
            return {}
        if heartbeat and run.status == "running" and (
                run.heartbeat_at is None or store.now() - run.heartbeat_at > HEARTBEAT_EVERY):
            store.runs.update(run.id, heartbeat_at=store.now())
        return {"control": {"paused": "pause", "cancelled": "cancel"}.get(run.status, run.control),
                "state": run.state}


def _decode(lines: list[Entry]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The records, and a refusal for each line that is not one (a journal cut off by a crash mid-line).
    A batch that is all valid is validated straight from its JSON (faster than decoding, then validating)."""
    if lines:
        try:
            return OPERATIONS.validate_json(b"[" + b",".join(lines) + b"]"), []
        except (ValidationError, TypeError):  # TypeError: screenshots (frames) among them
            pass  # decode them one by one, and let the store say which and why
    records, unreadable = [], []
    for line in lines:
        try:
            records.append(decode(line))
        except orjson.JSONDecodeError:
            unreadable.append(_refusal(len(records) + len(unreadable), None,
                                       f"unreadable record {line[:80]!r}"))
    return records, unreadable


def _refusal(index: int, record: Any, message: str) -> dict[str, Any]:
    op = record.get("op", "?") if isinstance(record, dict) else getattr(record, "op", "?")
    return Rejection(index=index, op=str(op), subject=describe(record), error="InvalidInputError",
                     message=message).model_dump()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle; it drains us
    # Background work: where cores are scarce, training comes first and the backlog waits (bounded, in the journal).
    os.nice(WRITER_NICENESS)
    requests, answers = Receiver(int(sys.argv[1])), int(sys.argv[2])
    where = orjson.loads(requests.receive())
    applier = Applier(where["url"], where["project"], where["token"])
    while True:
        try:
            message = requests.receive()
        except EOFError:
            return
        send(answers, orjson.dumps(applier.handle(message)))


if __name__ == "__main__":
    main()
