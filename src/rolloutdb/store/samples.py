"""Samples: training data for a policy, (state, action, reward, next state, done, propensity), built from a domain's
evaluated decisions.

A decision's next state is the state its subject's next decision (in the same domain) saw; a decision whose
subject has no later one is ``done``. Building again after the rewards changed (new signals, evaluated again)
rewrites the samples of those decisions — one sample per decision, never two — and the next states of decisions
whose subject decided again since.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..errors import InvalidInputError
from ..records import Sample
from ..schema import decisions, samples
from .base import Area, RowReads, build_records, check_key
from .export import JsonlWriter, ParquetWriter, checked_out, written_whole

if TYPE_CHECKING:
    from . import Store

PAGE = 2000  # decisions read, and samples written, at a time
UPDATED_ON_REBUILD = ("state", "action", "reward", "next_state", "done", "dataset", "propensity", "policy_version",
                      "decided_at", "created_at")
EXPORTED = ("id", "source", "source_id", "state", "action", "reward", "next_state", "done", "propensity",
            "policy_version", "decided_at", "dataset")


class SampleRows(Area[Sample]):
    """The samples table, as every area reads one."""

    table = samples
    record = Sample
    noun = "sample"
    filterable = frozenset({"id", "source", "source_id", "dataset", "done", "reward", "propensity", "policy_version",
                            "decided_at", "created_at"})
    sortable = frozenset({"created_at", "decided_at", "reward"})


class Samples(RowReads[Sample]):
    """``store.samples``: build training samples from evaluated decisions, read them, export them."""

    noun = SampleRows.noun
    filterable = SampleRows.filterable

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows = SampleRows(store)

    def of(self, domain: str, *, since: datetime | None = None, until: datetime | None = None) -> list[Sample]:
        """The samples of a domain's decisions taken from ``since`` until ``until`` (either open), in the order
        they were taken."""
        filters: dict[str, Any] = {"source": self._store.policies.domain(domain).name}
        if since is not None:
            filters["decided_at__gte"] = since
        if until is not None:
            filters["decided_at__lt"] = until
        return self._rows.query(sort="decided_at", limit=None, **filters)

    # -- building ----------------------------------------------------------------------------------------

    def build(self, domain: str, *, since: datetime | None = None, until: datetime | None = None,
              dataset: str | None = None, on_progress: Callable[[int, int], None] | None = None) -> int:
        """Build (or build again) the samples of ``domain``'s evaluated decisions taken from ``since`` until
        ``until`` (either open), tagged ``dataset``; returns how many were written. ``on_progress(done, total)``
        follows it page by page."""
        source = self._store.policies.domain(domain).name  # NotDeclaredError naming the declared ones
        if dataset is not None:
            check_key("dataset", dataset, called="name")
        project = self._store.project_id
        ordered = (decisions.c.created_at, decisions.c.id)
        # The next decision of the same subject, over all of the domain's decisions (not only those in the window).
        following = (select(decisions.c.id, decisions.c.subject_id, decisions.c.action, decisions.c.state,
                            decisions.c.reward, decisions.c.propensity, decisions.c.policy_version,
                            decisions.c.created_at, decisions.c.evaluated_at,
                            func.lead(decisions.c.state, type_=decisions.c.state.type)
                            .over(partition_by=decisions.c.subject_id, order_by=ordered)
                            .label("next_state"),
                            func.lead(decisions.c.id).over(partition_by=decisions.c.subject_id, order_by=ordered)
                            .label("next_id"))
                     .where(decisions.c.project_id == project, decisions.c.domain == source)
                     .subquery())
        due = [following.c.evaluated_at.is_not(None), following.c.reward.is_not(None)]
        if since is not None:
            due.append(following.c.created_at >= since)
        if until is not None:
            due.append(following.c.created_at < until)
        written = 0
        # One pass: the next state needs the window function over the whole domain, so it is computed once and
        # streamed, its rows written a page at a time (each page its own transaction).
        with self._store.reading() as connection:
            total = connection.execute(select(func.count()).select_from(following).where(*due)).scalar_one()
            rows = connection.execution_options(stream_results=True, yield_per=PAGE).execute(
                select(following).where(*due).order_by(following.c.created_at, following.c.id)).mappings()
            for page in rows.partitions(PAGE):
                self._write(source, dataset, page)
                written += len(page)
                if on_progress is not None:
                    on_progress(written, total)
        return written

    def _write(self, source: str, dataset: str | None, rows) -> None:
        now = self._store.now()
        records = build_records(Sample, [
            {"project_id": self._store.project_id, "source": source, "source_id": row["id"], "state": row["state"],
             "action": row["action"], "reward": row["reward"], "next_state": row["next_state"],
             "done": row["next_id"] is None, "dataset": dataset, "propensity": row["propensity"],
             "policy_version": row["policy_version"], "decided_at": row["created_at"], "created_at": now}
            for row in rows], "sample")
        dialect_insert = postgresql_insert if self._store.backend == "postgresql" else sqlite_insert
        statement = dialect_insert(samples)
        statement = statement.on_conflict_do_update(
            index_elements=[samples.c.project_id, samples.c.source, samples.c.source_id],
            set_={name: statement.excluded[name] for name in UPDATED_ON_REBUILD})
        with self._store.writing() as connection:
            connection.execute(statement, [record.model_dump() for record in records])

    # -- export --------------------------------------------------------------------------------------------

    def export(self, out: str | os.PathLike, *, domain: str | None = None, dataset: str | None = None,
               since: datetime | None = None, until: datetime | None = None) -> int:
        """Write samples (of one domain or dataset, decided from ``since`` until ``until``) to ``out``, JSONL or
        Parquet by its suffix, a page at a time; returns how many rows. States are JSON objects in JSONL and JSON
        text in Parquet (their keys differ from domain to domain)."""
        path, container = checked_out(out)
        if container is None:
            raise InvalidInputError(f"samples are written to a .jsonl or .parquet file; out is {str(path)!r:.200}")
        conditions = [samples.c.project_id == self._store.project_id]
        for column, value in ((samples.c.source, domain), (samples.c.dataset, dataset)):
            if value is not None:
                conditions.append(column == check_key("sample", value, called=column.name))
        if since is not None:
            conditions.append(samples.c.decided_at >= since)
        if until is not None:
            conditions.append(samples.c.decided_at < until)
        partial = path.with_name(path.name + ".partial")
        rows_written, position = 0, None
        with written_whole(path, ParquetWriter(partial, _arrow_schema()) if container == "parquet"
                           else JsonlWriter(partial)) as writer:
            while True:
                page = [] if position is None else [samples.c.id > position]
                with self._store.reading() as connection:
                    rows = connection.execute(select(samples).where(and_(*conditions, *page))
                                              .order_by(samples.c.id).limit(PAGE)).mappings().all()
                if not rows:
                    break
                position = rows[-1]["id"]
                records = [self._rows.to_record(row).model_dump(mode="json", include=set(EXPORTED)) for row in rows]
                if container == "parquet":
                    for record in records:
                        for name in ("state", "action", "next_state"):
                            record[name] = None if record[name] is None else orjson.dumps(record[name]).decode()
                writer.write(records)
                rows_written += len(records)
        return rows_written

def _arrow_schema():
    import pyarrow as pa

    text = pa.string()
    return pa.schema([("id", text), ("source", text), ("source_id", text), ("state", text), ("action", text),
                      ("reward", pa.float64()), ("next_state", text), ("done", pa.bool_()),
                      ("propensity", pa.float64()), ("policy_version", text), ("decided_at", text),
                      ("dataset", text)])
