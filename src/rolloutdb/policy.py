"""A learned policy: a contextual bandit over the features of a logged state.

A state is a mapping of named features (numbers, flags, or text for a category). ``FeatureSchema`` is what a
policy was trained on: each feature's name and kind, a number's mean and scale (states are standardised) and a
category's values (one-hot; a value not seen in training is all zeros). It travels with the policy, so advising
with a state that lacks a feature is an error naming it, never a silent default.

``train_policy`` fits one ridge regression per action (scikit-learn) from the samples that took it, predicting
the reward, each sample weighted by the inverse of the probability with which the logging policy took its
action (clipped): the samples a policy logged most are not the ones it learns most from. The policy then
takes the action with the highest predicted reward, and with probability ``epsilon`` one at random, so that
every action keeps being tried and the next round's estimates stay unbiased.

Weights are kept as plain numbers (``Policy.to_bytes`` / ``from_bytes``: JSON): loading a policy runs no code,
and advising needs only NumPy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import InvalidInputError, MissingFeaturesError

NUMBER = "number"
CATEGORY = "category"
FORMAT = "rolloutdb.policy/1"  # what ``to_bytes`` writes; ``from_bytes`` refuses anything else
DEFAULT_EPSILON = 0.1
DEFAULT_ALPHA = 1.0  # ridge regularisation
DEFAULT_MAX_WEIGHT = 20.0  # an importance weight is clipped here: one rare sample cannot dominate


def require_numpy():
    try:
        import numpy
    except ImportError:  # an optional dependency
        raise InvalidInputError("policies need NumPy: pip install 'rolloutdb[flywheel]'") from None
    return numpy


@dataclass(frozen=True)
class Feature:
    """One feature of a state: a number (standardised by ``mean`` and ``scale``) or a category (``values``)."""

    name: str
    kind: str
    mean: float = 0.0
    scale: float = 1.0
    values: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return len(self.values) if self.kind == CATEGORY else 1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)  # bool is an int: a flag is 0 or 1


@dataclass(frozen=True)
class FeatureSchema:
    """The features a policy reads from a state, in order, and how each becomes numbers."""

    features: tuple[Feature, ...]

    @classmethod
    def infer(cls, states: Sequence[Mapping[str, Any]], only: Sequence[str] | None = None) -> FeatureSchema:
        """The schema of ``states``: each key every state has whose values are all numbers (or flags), or all
        text (a category); ``only`` names the keys to use instead (each must be one of those). Keys some
        states lack, or that hold other values (lists, objects, null), are left out."""
        if not states:
            raise InvalidInputError("no states to learn features from")
        for position, state in enumerate(states):
            if not isinstance(state, Mapping):
                raise InvalidInputError(f"state #{position} is not a mapping of features but "
                                        f"{type(state).__name__}")
        common = set(states[0]).intersection(*states[1:])
        usable: dict[str, Feature] = {}
        for name in sorted(common):
            values = [state[name] for state in states]
            if all(_is_number(value) for value in values):
                numbers = [float(value) for value in values]
                mean = sum(numbers) / len(numbers)
                spread = math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
                usable[name] = Feature(name, NUMBER, mean=mean, scale=spread or 1.0)
            elif all(isinstance(value, str) for value in values):
                usable[name] = Feature(name, CATEGORY, values=tuple(sorted(set(values))))
        if only is not None:
            unknown = [name for name in only if name not in usable]
            if unknown:
                raise InvalidInputError(f"feature(s) {', '.join(map(repr, unknown))} are not in every state as "
                                        f"numbers or text; usable: {', '.join(usable) or 'none'}")
            usable = {name: usable[name] for name in only}
        if not usable:
            raise InvalidInputError("the states have no feature in common that is a number, a flag or text")
        return cls(tuple(usable.values()))

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def width(self) -> int:
        return sum(feature.width for feature in self.features)

    def vector(self, state: Mapping[str, Any]) -> list[float]:
        """The numbers a policy reads from ``state``; MissingFeaturesError naming what it lacks."""
        if not isinstance(state, Mapping):
            raise MissingFeaturesError(f"a state is a mapping of features ({', '.join(self.names)}), got "
                                       f"{type(state).__name__}")
        out: list[float] = []
        try:
            for feature in self.features:
                value = state[feature.name]
                if feature.kind == NUMBER:
                    if not _is_number(value):
                        raise MissingFeaturesError(f"feature {feature.name!r} is a number, got {value!r:.80}")
                    out.append((value - feature.mean) / feature.scale)
                else:
                    if not isinstance(value, str):
                        raise MissingFeaturesError(f"feature {feature.name!r} is text (one of "
                                                   f"{', '.join(feature.values)}), got {value!r:.80}")
                    out.extend(1.0 if value == known else 0.0 for known in feature.values)
        except KeyError:
            missing = [name for name in self.names if name not in state]
            raise MissingFeaturesError(f"the state lacks feature(s) {', '.join(map(repr, missing))}; the policy "
                                       f"reads {', '.join(self.names)}") from None
        return out

    def matrix(self, states: Sequence[Mapping[str, Any]]):
        """``vector`` of each state, as the rows of a NumPy array."""
        numpy = require_numpy()
        return numpy.array([self.vector(state) for state in states], dtype=float).reshape(len(states), self.width)

    def to_dict(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "kind": f.kind, **({"mean": f.mean, "scale": f.scale} if f.kind == NUMBER
                                                     else {"values": list(f.values)})} for f in self.features]

    @classmethod
    def from_dict(cls, features: Sequence[Mapping[str, Any]]) -> FeatureSchema:
        return cls(tuple(Feature(f["name"], f["kind"], f.get("mean", 0.0), f.get("scale", 1.0),
                                 tuple(f.get("values", ()))) for f in features))


@dataclass
class Policy:
    """A trained contextual bandit: per action, a linear model of the reward from a state's features; it takes
    the best predicted action, and with probability ``epsilon`` any action at random."""

    domain: str
    actions: tuple[str, ...]
    schema: FeatureSchema
    coefficients: list[list[float]]  # one row per action, ``schema.width`` long
    intercepts: list[float]
    epsilon: float = DEFAULT_EPSILON
    training: dict[str, Any] = field(default_factory=dict)  # how it was trained: samples per action, alpha, ...

    def __post_init__(self) -> None:
        numpy = require_numpy()
        check_epsilon(self.epsilon)
        self._weights = numpy.asarray(self.coefficients, dtype=float).reshape(len(self.actions), self.schema.width)
        self._bias = numpy.asarray(self.intercepts, dtype=float)
        if self._bias.shape != (len(self.actions),):
            raise ValueError(f"{len(self.intercepts)} intercepts for {len(self.actions)} actions")

    def predict(self, state: Mapping[str, Any]) -> dict[str, float]:
        """The reward the policy expects of each action in ``state``."""
        return dict(zip(self.actions, self._scores(self.schema.vector(state)).tolist()))

    def predict_many(self, states: Sequence[Mapping[str, Any]]):
        """``predict`` for many states, as an array (one row per state, one column per action)."""
        return self.schema.matrix(states) @ self._weights.T + self._bias

    def probabilities(self, state: Mapping[str, Any], epsilon: float | None = None) -> dict[str, float]:
        """The probability of each action in ``state`` (``epsilon``: this exploration rate instead of the
        policy's)."""
        scores = self._scores(self.schema.vector(state))
        return dict(zip(self.actions, self._spread(int(scores.argmax()), epsilon)))

    def probabilities_many(self, states: Sequence[Mapping[str, Any]], epsilon: float | None = None):
        """``probabilities`` for many states, as an array (rows: states, columns: actions)."""
        numpy = require_numpy()
        best = self.predict_many(states).argmax(axis=1)
        rate = self.epsilon if epsilon is None else check_epsilon(epsilon)
        out = numpy.full((len(states), len(self.actions)), rate / len(self.actions))
        out[numpy.arange(len(states)), best] += 1.0 - rate
        return out

    def choose(self, state: Mapping[str, Any], rng: random.Random, epsilon: float | None = None
               ) -> tuple[str, dict[str, float]]:
        """An action for ``state`` drawn from the policy's probabilities, and those probabilities."""
        scores = self._scores(self.schema.vector(state))
        probabilities = self._spread(int(scores.argmax()), epsilon)
        pick = rng.random()
        chosen = len(self.actions) - 1
        for index, probability in enumerate(probabilities):
            pick -= probability
            if pick < 0:
                chosen = index
                break
        return self.actions[chosen], dict(zip(self.actions, probabilities))

    def _scores(self, vector: list[float]):
        return self._weights @ vector + self._bias

    def _spread(self, best: int, epsilon: float | None) -> list[float]:
        rate = self.epsilon if epsilon is None else epsilon
        share = rate / len(self.actions)
        return [share + (1.0 - rate if index == best else 0.0) for index in range(len(self.actions))]

    # -- stored form -------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps({"format": FORMAT, "domain": self.domain, "actions": list(self.actions),
                             "features": self.schema.to_dict(), "coefficients": self.coefficients,
                             "intercepts": self.intercepts, "epsilon": self.epsilon, "training": self.training})

    @classmethod
    def from_bytes(cls, data: bytes) -> Policy:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"not a stored policy (not JSON: {exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InvalidInputError(f"not a stored policy of format {FORMAT}")
        try:
            return cls(document["domain"], tuple(document["actions"]), FeatureSchema.from_dict(document["features"]),
                       document["coefficients"], document["intercepts"], document["epsilon"], document["training"])
        except (KeyError, TypeError, ValueError) as exc:  # cut short or edited: its parts do not fit together
            raise InvalidInputError(f"not a stored policy of format {FORMAT}: {type(exc).__name__}: {exc}") from None


def check_epsilon(epsilon: Any) -> float:
    """``epsilon`` if it is an exploration rate (a number from 0 to 1); else InvalidInputError."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= epsilon <= 1.0:
        raise InvalidInputError(f"epsilon is an exploration rate from 0 to 1, got {epsilon!r:.80}")
    return float(epsilon)


def check_alpha(alpha: Any) -> float:
    """``alpha`` if it is a ridge regularisation (a finite number above 0); else InvalidInputError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < math.inf:
        raise InvalidInputError(f"alpha is the ridge regularisation, a finite number above 0, got {alpha!r:.80}")
    return float(alpha)


def importance_weights(propensities: Sequence[float | None], max_weight: float = DEFAULT_MAX_WEIGHT):
    """1 / propensity per sample, clipped at ``max_weight``; a sample without a logged propensity weighs 1."""
    numpy = require_numpy()
    logged = numpy.array([1.0 if p is None else p for p in propensities], dtype=float)
    if ((logged <= 0) | (logged > 1)).any():
        raise InvalidInputError("a propensity is the probability the logging policy gave its action: "
                                "greater than 0, at most 1")
    return numpy.minimum(1.0 / logged, max_weight)


def train_policy(domain: str, actions: Sequence[str], states: Sequence[Mapping[str, Any]], taken: Sequence[str],
                 rewards: Sequence[float], propensities: Sequence[float | None], *, features: Sequence[str] | None = None,
                 epsilon: float = DEFAULT_EPSILON, alpha: float = DEFAULT_ALPHA,
                 max_weight: float = DEFAULT_MAX_WEIGHT) -> Policy:
    """A policy over ``actions`` fitted to logged samples (the state seen, the action taken, its reward and the
    probability the logging policy gave it). ``features``: the state keys to read (default: every usable one).
    An action no sample took is predicted the lowest reward seen, so only exploration tries it."""
    numpy = require_numpy()
    try:
        from sklearn.linear_model import Ridge
    except ImportError:
        raise InvalidInputError("training a policy needs scikit-learn: pip install 'rolloutdb[flywheel]'") from None
    check_epsilon(epsilon)
    check_alpha(alpha)
    if not len(states) == len(taken) == len(rewards) == len(propensities):
        raise InvalidInputError("states, actions, rewards and propensities must be as many each")
    unknown = sorted(set(taken) - set(actions))
    if unknown:
        raise InvalidInputError(f"samples took action(s) {', '.join(unknown)}, not among {', '.join(actions)}")
    schema = FeatureSchema.infer(states, features)
    x = schema.matrix(states)
    y = numpy.asarray(rewards, dtype=float)
    weights = importance_weights(propensities, max_weight)
    taken_array = numpy.asarray(taken)
    coefficients, intercepts, counts = [], [], {}
    for action in actions:
        rows = taken_array == action
        counts[action] = int(rows.sum())
        if counts[action] == 0:
            coefficients.append([0.0] * schema.width)
            intercepts.append(float(y.min()))
            continue
        model = Ridge(alpha=alpha).fit(x[rows], y[rows], sample_weight=weights[rows])
        coefficients.append([float(c) for c in model.coef_])
        intercepts.append(float(model.intercept_))
    return Policy(domain, tuple(actions), schema, coefficients, intercepts, epsilon,
                  {"samples": len(states), "samples_per_action": counts, "alpha": alpha, "max_weight": max_weight})


__all__ = ["FeatureSchema", "MissingFeaturesError", "Policy", "check_alpha", "check_epsilon", "importance_weights",
           "train_policy"]
