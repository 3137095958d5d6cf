"""Rewards: a domain's decisions evaluated by its reward rules (``reward_rules``), and their statistics.

Evaluation is a job (``store.jobs``: progress, pause, resume, cancel at the checkpoint after each batch). It is
idempotent: a decision's reward is computed afresh from all of its subject's signals each time, so evaluating
again changes only what new signals change and never counts a signal twice. A decision is due once its rule's delay
has passed; it is evaluated again whenever its subject gets a signal recorded after its last evaluation."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, tuple_, update

from ..errors import InvalidInputError, JobCancelled, JobPaused
from ..records import Record, Time, Whole
from ..schema import decisions, signals
from .base import KEYS_PER_QUERY, aware_time, check_key, whole_number
from .reward_rules import DAY, DEFAULT_RULES, RuleSet, shifted
from .summary import PERIODS, utc_period

if TYPE_CHECKING:
    from . import Store
    from .decisions import Domains

DEFAULT_BATCH = 500
# Evaluation notes a little less than the time it read the signals: a signal being written meanwhile (stamped
# before, committed after) still counts as new at the next evaluation, which then evaluates its decisions again.
IN_FLIGHT = timedelta(seconds=60)
# Student's t at 97.5 % for 1..30 degrees of freedom; beyond, its Cornish-Fisher expansion around the normal's.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class EvaluationResult(Record):
    """What one ``rewards.evaluate`` did: its job, how it ended, the decisions evaluated and those whose reward
    changed (a first reward counts as a change)."""

    job: str
    status: str  # completed, paused or cancelled
    domain: str
    due: Whole
    evaluated: Whole
    changed: Whole
    as_of: Time


class RewardStats(Record):
    """The rewards of one action under one policy version: count, mean, standard deviation, and the 95 % confidence
    interval of the mean (Student's t; None for fewer than two rewards)."""

    action: str
    policy_version: str | None
    count: Whole
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None


class RewardPeriod(Record):
    """The decisions of one action taken in one period (``rewards.over_time``): how many, how many have a reward
    (are evaluated), and the mean of those rewards (None without any)."""

    period: str  # its start in UTC: 2026-12-05 (a day) or 2026-12-05T13:00 (an hour)
    action: str
    decisions: Whole
    evaluated: Whole
    reward_mean: float | None


def t_quantile_975(degrees: int) -> float:
    if degrees <= len(T_975):
        return T_975[degrees - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * degrees) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * degrees ** 2)


class Rewards:
    """``store.rewards``: evaluate a domain's due decisions by reward rules, and their statistics."""

    def __init__(self, store: Store, domains: Domains) -> None:
        self._store = store
        self._domains = domains

    def evaluate(self, domain: str = "memory", *, rules: RuleSet | Mapping[str, Any] | str | os.PathLike | None = None,
                 as_of: datetime | None = None, batch_size: int = DEFAULT_BATCH, job: str | None = None,
                 force: bool = False) -> EvaluationResult:
        """Evaluate the due decisions of ``domain`` by ``rules`` (a ``RuleSet``, a dict or a TOML file's path; default:
        the built-in ``memory`` rules), ``batch_size`` at a time, as the job ``job`` (default: a new one named
        ``rewards/<domain>/<time>``; one evaluation per domain runs at a time). Due: taken at least the rule's delay
        before ``as_of`` (default now), and never evaluated or given a signal since; ``force`` evaluates every due
        decision again. The job's pause and cancel requests stop it after a batch; evaluating again with the same
        ``job`` resumes it. Returns what it did."""
        by_action = (DEFAULT_RULES if rules is None else RuleSet.load(rules)).check(self._domains).for_domain(
            self._domains.get(domain))
        whole_number("batch_size", batch_size, 1, 10_000)
        if not isinstance(force, bool):
            raise InvalidInputError(f"force must be True or False, got {type(force).__name__}")
        as_of = self._store.now() if as_of is None else aware_time("as_of", as_of)
        name = job or f"rewards/{domain}/{self._store.now().strftime('%Y%m%dT%H%M%S.%fZ')}"
        check_key("job", name, called="name")
        # The latest a decision of each action may have been taken to be due now (none: the calendar has no such day).
        cutoffs = {action: cutoff for action, rule in by_action.items()
                   if (cutoff := shifted(as_of, -rule.delay_days * DAY)) is not None}
        status, state = "completed", {"after": None, "evaluated": 0, "changed": 0}
        config = {"domain": domain, "force": force,
                  "rules": {action: rule.model_dump(mode="json") for action, rule in by_action.items()}}
        with self._store.jobs.start(name, key=f"rewards/{domain}", kind="job", config=config) as running:
            if running.state:  # resumed: on from where it stopped, counting what it did before
                state = dict(running.state)
            total = state["evaluated"] + self._count_due(domain, cutoffs, force)
            try:
                while True:
                    batch = self._due_batch(domain, cutoffs, force, state["after"], batch_size)
                    if not batch:
                        break
                    evaluated, changed = self._evaluate_batch(domain, batch, by_action)
                    last = batch[-1]
                    state = {"after": [last["created_at"].isoformat(), last["id"]],
                             "evaluated": state["evaluated"] + evaluated, "changed": state["changed"] + changed}
                    running.progress(min(1.0, state["evaluated"] / max(total, 1)))
                    running.checkpoint(state=state, message=f"{state['evaluated']:,} of {total:,} decisions evaluated")
            except JobPaused:
                status = "paused"
                raise
            except JobCancelled:
                status = "cancelled"
                raise
        return EvaluationResult(job=name, status=status, domain=domain, due=total, evaluated=state["evaluated"],
                                changed=state["changed"], as_of=as_of)

    def statistics(self, domain: str = "memory", *, since: datetime | None = None,
                   policy_version: str | None = None) -> list[RewardStats]:
        """Per action and policy version, the rewards of ``domain``'s evaluated decisions (taken ``since``, of one
        ``policy_version``): count, mean, standard deviation and 95 % confidence interval of the mean."""
        name = self._domains.get(domain).name
        reward = decisions.c.reward
        statement = (select(decisions.c.action, decisions.c.policy_version, func.count(reward), func.avg(reward),
                            func.avg(reward * reward))
                     .where(decisions.c.project_id == self._store.project_id, decisions.c.domain == name,
                            reward.is_not(None))
                     .group_by(decisions.c.action, decisions.c.policy_version)
                     .order_by(decisions.c.action, decisions.c.policy_version))
        if since is not None:
            statement = statement.where(decisions.c.created_at >= aware_time("since", since))
        if policy_version is not None:
            check_key("policy version", policy_version)
            statement = statement.where(decisions.c.policy_version == policy_version)
        with self._store.reading() as connection:
            rows = connection.execute(statement).all()
        stats = []
        for action, version, count, mean, mean_square in rows:
            mean, count = float(mean), int(count)
            std = math.sqrt(max(0.0, (float(mean_square) - mean * mean) * count / (count - 1))) if count > 1 else None
            half = None if std is None else t_quantile_975(count - 1) * std / math.sqrt(count)
            stats.append(RewardStats(action=action, policy_version=version, count=count, mean=mean, std=std,
                                     ci_low=None if half is None else mean - half,
                                     ci_high=None if half is None else mean + half))
        return stats

    def over_time(self, domain: str = "memory", *, every: str = "day", since: datetime | None = None
                  ) -> list[RewardPeriod]:
        """Per period (a UTC ``day`` or ``hour``) and action, ``domain``'s decisions (taken ``since``): how many were
        taken, how many have a reward and the mean of those rewards; by period, then action."""
        name = self._domains.get(domain).name
        if every not in PERIODS:
            raise InvalidInputError(f"every must be one of {', '.join(PERIODS)}, got {every!r:.80}")
        period = utc_period(decisions.c.created_at, self._store.backend, every).label("period")
        statement = (select(period, decisions.c.action, func.count(), func.count(decisions.c.reward),
                            func.avg(decisions.c.reward))
                     .where(decisions.c.project_id == self._store.project_id, decisions.c.domain == name)
                     .group_by(period, decisions.c.action).order_by(period, decisions.c.action))
        if since is not None:
            statement = statement.where(decisions.c.created_at >= aware_time("since", since))
        with self._store.reading() as connection:
            rows = connection.execute(statement).all()
        return [RewardPeriod(period=start, action=action, decisions=taken, evaluated=evaluated,
                             reward_mean=None if mean is None else float(mean))
                for start, action, taken, evaluated, mean in rows]

    # -- building blocks ---------------------------------------------------------------------------------

    def _due_clause(self, domain: str, cutoffs: Mapping[str, datetime], force: bool):
        due = [decisions.c.project_id == self._store.project_id, decisions.c.domain == domain,
               or_(*[and_(decisions.c.action == action, decisions.c.created_at <= cutoff)
                     for action, cutoff in cutoffs.items()])]
        if not force:
            newer_signal = exists().where(signals.c.project_id == decisions.c.project_id,
                                          signals.c.domain == decisions.c.domain,
                                          signals.c.subject_id == decisions.c.subject_id,
                                          signals.c.recorded_at > decisions.c.evaluated_at)
            due.append(or_(decisions.c.evaluated_at.is_(None), newer_signal))
        return and_(*due)

    def _count_due(self, domain: str, cutoffs: Mapping[str, datetime], force: bool) -> int:
        if not cutoffs:
            return 0
        with self._store.reading() as connection:
            return int(connection.execute(select(func.count()).select_from(decisions)
                                          .where(self._due_clause(domain, cutoffs, force))).scalar_one())

    def _due_batch(self, domain: str, cutoffs: Mapping[str, datetime], force: bool, after: list[str] | None,
                   limit: int) -> list[dict[str, Any]]:
        if not cutoffs:
            return []
        statement = (select(decisions.c.id, decisions.c.subject_id, decisions.c.action, decisions.c.state,
                            decisions.c.created_at, decisions.c.reward)
                     .where(self._due_clause(domain, cutoffs, force))
                     .order_by(decisions.c.created_at, decisions.c.id).limit(limit))
        if after is not None:
            statement = statement.where(tuple_(decisions.c.created_at, decisions.c.id)
                                        > tuple_(bindparam("after_time", datetime.fromisoformat(after[0]),
                                                           type_=decisions.c.created_at.type),
                                                 bindparam("after_id", after[1])))
        with self._store.reading() as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]

    def _evaluate_batch(self, domain: str, batch: list[dict[str, Any]], by_action: Mapping[str, Any]) -> tuple[int, int]:
        """Compute and write the rewards of one batch; returns how many were evaluated and how many changed."""
        read_at = self._store.now()
        subjects = sorted({row["subject_id"] for row in batch})
        earliest = min(row["created_at"] for row in batch)
        by_subject: dict[str, list[tuple[str, float, datetime]]] = {}
        with self._store.reading() as connection:
            for start in range(0, len(subjects), KEYS_PER_QUERY):
                for subject, kind, value, time in connection.execute(
                        select(signals.c.subject_id, signals.c.kind, signals.c.value, signals.c.time).where(
                            signals.c.project_id == self._store.project_id, signals.c.domain == domain,
                            signals.c.subject_id.in_(subjects[start:start + KEYS_PER_QUERY]),
                            signals.c.time >= earliest)):
                    by_subject.setdefault(subject, []).append((kind, value, time))
        evaluated_at = read_at - IN_FLIGHT
        updates, changed = [], 0
        for row in batch:
            reward, outcome = by_action[row["action"]].reward(row["created_at"], row["state"],
                                                              by_subject.get(row["subject_id"], []))
            changed += row["reward"] != reward
            updates.append({"b_id": row["id"], "b_reward": reward, "b_outcome": outcome, "b_evaluated_at": evaluated_at})
        statement = (update(decisions)
                     .where(decisions.c.id == bindparam("b_id"), decisions.c.project_id == self._store.project_id)
                     .values(reward=bindparam("b_reward"), outcome=bindparam("b_outcome"),
                             evaluated_at=bindparam("b_evaluated_at")))
        with self._store.writing() as connection:
            connection.execute(statement, updates)
        return len(batch), changed
