"""The advisor: a domain's active policy, loaded once, asked for the action to take in a state.

``store.advisor("memory")`` reads the domain's active policy (``store.policies``) and keeps the
policy in memory: ``advise`` is arithmetic on a few numbers, with no database round trip. The advice carries the
probability with which its action was drawn (``propensity``) and the policy's version; logging a decision with
them (``Advisor.decide`` does both at once) keeps the next round's off-policy estimates unbiased. ``refresh``
picks up a version activated since.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..policy import check_epsilon
from .policies import load_policy, policy_version

if TYPE_CHECKING:
    from . import Store

ADVISOR_REFRESH_SECONDS = 5.0  # how stale ``store.advise`` lets its advisors' policies get


@dataclass(frozen=True, slots=True)
class Advice:
    """What the advisor says to do in a state: the action drawn, every action's probability, the drawn one's
    (``propensity``: log it with the decision) and the version of the policy that said so."""

    action: str
    probabilities: dict[str, float]
    propensity: float
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "probabilities": self.probabilities, "propensity": self.propensity,
                "policy_version": self.policy_version}


class Advisor:
    """A domain's active policy, in memory (``store.advisor(domain)``)."""

    def __init__(self, store: Store, domain: str, *, epsilon: float | None = None, seed: int | None = None) -> None:
        self._store = store  # a database's store, or a server's through the remote client
        self.domain = domain  # checked by the first refresh: NotDeclaredError for a domain not declared
        self.epsilon = None if epsilon is None else check_epsilon(epsilon)  # None: the policy's own rate
        self._random = random.Random(seed)
        self.checkpoint_id: str | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Load the domain's active policy again if another version became active; whether it changed.
        NotFoundError when no version is active (``rolloutdb flywheel run --train`` trains and activates one)."""
        active = self._store.policies.active(self.domain)
        if active is None:
            raise NotFoundError(f"no active policy for domain {self.domain!r} in project {self._store.project!r}: "
                                f"`rolloutdb flywheel run --domain {self.domain} --train` trains one and activates "
                                "it when its off-policy estimate beats the decisions logged")
        if active.id == self.checkpoint_id:
            return False
        self.policy = load_policy(self._store, active)
        self.policy_version = policy_version(self.domain, active.version)
        self.checkpoint_id = active.id
        return True

    def advise(self, state: Mapping[str, Any]) -> Advice:
        """The action to take in ``state``, drawn from the policy's probabilities (exploring with its epsilon).
        MissingFeaturesError when the state lacks a feature the policy reads."""
        action, probabilities = self.policy.choose(state, self._random, self.epsilon)
        return Advice(action, probabilities, probabilities[action], self.policy_version)

    def decide(self, subject_id: str, state: Mapping[str, Any], *, reason: str | None = None,
               context: Any = None, logger: Any = None) -> Advice:
        """``advise``, and log the decision it advises (with its propensity and policy version): in the store, or
        through ``logger`` (a ``DecisionLogger``: queued, so the caller never waits for the database)."""
        advice = self.advise(state)
        (logger or self._store.decisions).log(self.domain, subject_id, advice.action, reason=reason, state=dict(state),
                                              context=context, policy_version=advice.policy_version,
                                              propensity=advice.propensity)
        return advice
