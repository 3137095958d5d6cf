"""Reward rules: how a domain's decisions earn their reward from the signals of their subjects.

A rule is per domain and action. Within its window (``window_days`` after the decision) every signal counts with a
time decay by how long after the decision it came (``decay`` per ``decay_days``: the seed's ×0.95 per 7 days):

- ``weights``: per signal kind, weight × Σ value × decay (hits: their number, decayed);
- ``gains``: per signal kind, weight × (the latest value − the value before: the decision's state of that name, else
  the first signal's) × decay at the latest one (a quality score that went up);
- ``state_weights``: per feature of the decision's state, weight × its value (an ignored memory's similar ones);
- ``threshold``: ``reward`` when the decayed sum of a kind is below ``below``, ``otherwise`` else (a deleted memory
  nobody asks for);

then the sum is clipped to ``clip`` (low, high). A decision is evaluated ``delay_days`` after it was taken.

Rules come as a dict or a TOML file: a table per domain, whose plain keys (decay, decay_days, delay_days,
window_days, clip) apply to each of its actions, and a table per action::

    [memory]
    delay_days = 7

    [memory.insert]
    weights = { hit = 1.0 }

A rule set is checked whole: an unknown key, a negative decay, an undeclared action or signal kind is refused,
naming the line of a file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import InvalidInputError
from .domains import Domain

Finite = Annotated[float, Field(allow_inf_nan=False)]
DAY = timedelta(days=1)
MAX_DAYS = 100_000.0  # about 270 years: any delay, window or decay period a rule needs, within what a time holds
DOMAIN_SETTINGS = ("decay", "decay_days", "delay_days", "window_days", "clip")  # keys a domain's table may set


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Rule):
    """``reward`` when the decayed sum of the signals of ``kind`` is below ``below``, ``otherwise`` when not."""

    kind: str
    below: Finite
    reward: Finite
    otherwise: Finite


class ActionRule(_Rule):
    """How one action of a domain earns its reward (see the module)."""

    weights: dict[str, Finite] = Field(default_factory=dict)
    gains: dict[str, Finite] = Field(default_factory=dict)
    state_weights: dict[str, Finite] = Field(default_factory=dict)
    threshold: Threshold | None = None
    decay: Annotated[Finite, Field(ge=0, le=1)] = 0.95
    decay_days: Annotated[Finite, Field(gt=0, le=MAX_DAYS)] = 7.0
    delay_days: Annotated[Finite, Field(ge=0, le=MAX_DAYS)] = 7.0
    window_days: Annotated[Finite, Field(gt=0, le=MAX_DAYS)] = 30.0
    clip: tuple[Finite, Finite] | None = None

    @model_validator(mode="after")
    def _clip_in_order(self) -> ActionRule:
        if self.clip is not None and self.clip[0] > self.clip[1]:
            raise ValueError(f"clip is (low, high), got low {self.clip[0]} above high {self.clip[1]}")
        return self

    def kinds(self) -> set[str]:
        """The signal kinds the rule reads."""
        return {*self.weights, *self.gains, *([self.threshold.kind] if self.threshold else [])}

    def reward(self, decided_at: datetime, state: Any, signals: Sequence[tuple[str, float, datetime]]
               ) -> tuple[float, dict[str, Any]]:
        """The reward of a decision taken at ``decided_at`` seeing ``state``, given its subject's signals as
        (kind, value, time); and the outcome: what each part of the rule gave and the signals it counted."""
        end = shifted(decided_at, self.window_days * DAY) or datetime.max.replace(tzinfo=timezone.utc)
        counted: dict[str, list[tuple[float, datetime, float]]] = {}
        for kind, value, time in sorted(signals, key=lambda signal: signal[2]):
            if decided_at <= time <= end:
                factor = self.decay ** ((time - decided_at) / (self.decay_days * DAY))
                counted.setdefault(kind, []).append((value, time, factor))
        decayed = {kind: sum(value * factor for value, _, factor in items) for kind, items in counted.items()}
        terms: dict[str, float] = {}
        for kind, weight in self.weights.items():
            terms[f"weights.{kind}"] = weight * decayed.get(kind, 0.0)
        features = state if isinstance(state, Mapping) else {}
        missing = []
        for kind, weight in self.gains.items():
            items = counted.get(kind, [])
            before = features.get(kind)
            if not _number(before):
                before = items[0][0] if len(items) > 1 else None
            terms[f"gains.{kind}"] = 0.0 if not items or before is None else weight * (items[-1][0] - before) * items[-1][2]
        for feature, weight in self.state_weights.items():
            value = features.get(feature)
            if not _number(value):
                missing.append(feature)
                value = 0.0
            terms[f"state.{feature}"] = weight * float(value)
        if self.threshold is not None:
            rule = self.threshold
            terms["threshold"] = rule.reward if decayed.get(rule.kind, 0.0) < rule.below else rule.otherwise
        raw = sum(terms.values())
        reward = raw if self.clip is None else min(max(raw, self.clip[0]), self.clip[1])
        outcome = {"terms": terms, "raw": raw, "clipped": reward != raw,
                   "signals": {kind: {"count": len(items), "decayed": decayed[kind]} for kind, items in counted.items()},
                   "window_end": end.isoformat()}
        if missing:
            outcome["missing_state"] = missing
        return reward, outcome


def shifted(time: datetime, by: timedelta) -> datetime | None:
    """``time + by``, or None past the ends of the calendar (year 1 to 9999)."""
    try:
        return time + by
    except OverflowError:
        return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RuleSet:
    """Reward rules by domain and action (``rules[domain][action]``). ``RuleSet.load`` reads a TOML file or a dict."""

    def __init__(self, rules: Mapping[str, Mapping[str, ActionRule]], source: Mapping[str, Any]) -> None:
        self.rules = {domain: dict(actions) for domain, actions in rules.items()}
        self.source = source  # as given: what travels to a server

    def for_domain(self, domain: Domain) -> dict[str, ActionRule]:
        """The rules of ``domain``'s actions; InvalidInputError when the set has none for it."""
        if domain.name not in self.rules:
            raise InvalidInputError(f"no reward rules for domain {domain.name!r} (rules are given for "
                                    f"{', '.join(sorted(self.rules)) or 'no domain'}): pass rules=")
        return self.rules[domain.name]

    def check(self, domains: Mapping[str, Domain] | Any) -> RuleSet:
        """Refuse rules for a domain, action or signal kind not declared (``domains.get`` names them)."""
        for name, actions in self.rules.items():
            domain = domains.get(name)
            for action, rule in actions.items():
                domain.check_action(action)
                for kind in sorted(rule.kinds()):
                    domain.check_signal(kind)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {domain: {action: rule.model_dump(mode="json", exclude_defaults=True) for action, rule in actions.items()}
                for domain, actions in self.rules.items()}

    @classmethod
    def load(cls, rules: RuleSet | Mapping[str, Any] | str | os.PathLike) -> RuleSet:
        """Rules from a dict (``{"memory": {"insert": {...}, "delay_days": 7}}``), a TOML file's path, or as they are.
        InvalidInputError naming the key (and, for a file, its line) of anything wrong."""
        if isinstance(rules, RuleSet):
            return rules
        if isinstance(rules, (str, os.PathLike)):
            return _from_file(Path(rules))
        if not isinstance(rules, Mapping):
            raise InvalidInputError(f"rules are a dict, a TOML file's path or a RuleSet, got {type(rules).__name__}")
        return _from_dict(rules, None)


def _from_file(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the reward rules {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{path}: not TOML: {exc}") from None
    return _from_dict(data, (path, text))


def _from_dict(data: Mapping[str, Any], file: tuple[Path, str] | None) -> RuleSet:
    rules: dict[str, dict[str, ActionRule]] = {}
    for domain, table in data.items():
        if not isinstance(table, Mapping):
            _refuse(file, (domain,), f"a domain's rules are a table of actions, got {type(table).__name__}")
        shared = {key: value for key, value in table.items() if not isinstance(value, Mapping) or key == "clip"}
        for key in shared:
            if key not in DOMAIN_SETTINGS:
                _refuse(file, (domain, key), f"unknown key {key!r}: a domain's table sets {', '.join(DOMAIN_SETTINGS)} "
                        "and has a table per action")
        rules[domain] = {}
        for action, fields in table.items():
            if action in shared:
                continue
            try:
                rules[domain][action] = ActionRule.model_validate({**shared, **fields})
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                loc = tuple(error["loc"])
                from_domain = bool(loc) and loc[0] in shared and loc[0] not in fields  # a setting of the domain's table
                where = (domain, *loc) if from_domain else (domain, action, *loc)
                message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                _refuse(file, where, f"{'.'.join(map(str, where))}: {message}")
    return RuleSet(rules, data)


def _refuse(file: tuple[Path, str] | None, where: tuple[Any, ...], message: str) -> None:
    if file is None:
        raise InvalidInputError(f"invalid reward rules: {message}")
    path, text = file
    line = _line_of(text, [str(part) for part in where])
    raise InvalidInputError(f"{path}" + (f", line {line}" if line else "") + f": invalid reward rules: {message}")


def _line_of(text: str, where: list[str]) -> int | None:
    """The line of a TOML text that sets the key at path ``where`` (its table's header, for a table); the nearest
    enclosing one it finds, else None."""
    table: list[str] = []
    best: tuple[int, int] | None = None  # (how much of the path it matches, line)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]", stripped)
        if header:
            table = [part.strip().strip('"\'') for part in header.group(1).split(".")]
            if table == where[:len(table)] and (best is None or len(table) > best[0]):
                best = (len(table), number)
            continue
        assignment = re.match(r"([A-Za-z0-9_\-\"'. ]+?)\s*=", stripped)
        if not assignment:
            continue
        keys = table + [part.strip().strip('"\'') for part in assignment.group(1).split(".")]
        matched = len(keys) if keys == where[:len(keys)] else 0
        if matched == 0 and keys[:-1] == where[:len(keys) - 1] and len(where) > len(keys) - 1 and \
                re.search(r"\b" + re.escape(where[-1]) + r"\s*=", stripped):
            matched = len(where)  # an inline table: { hit = 1.0 }
        if matched and (best is None or matched > best[0]):
            best = (matched, number)
    return None if best is None else best[1]


# The seed's four memory rules (its RewardCalculator), with feedback counted for what was kept: REWARD_HIT_WEIGHT 1.0,
# REWARD_QUALITY_WEIGHT 0.5, REWARD_TIME_DECAY_FACTOR 0.95 per 7 days, evaluated 7 days on (its days_threshold).
MEMORY_RULES: dict[str, Any] = {
    "memory": {
        "decay": 0.95, "decay_days": 7.0, "delay_days": 7.0, "window_days": 30.0,
        "insert": {"weights": {"hit": 1.0, "feedback": 1.0}},
        "update": {"weights": {"hit": 1.0, "feedback": 1.0}, "gains": {"quality": 0.5}},
        "ignore": {"state_weights": {"similar_memories": 0.5}},
        "delete": {"threshold": {"kind": "hit", "below": 0.1, "reward": 0.5, "otherwise": -0.3}},
    },
}
DEFAULT_RULES = RuleSet.load(MEMORY_RULES)
