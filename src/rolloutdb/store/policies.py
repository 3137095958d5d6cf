"""Policies: the versions of a domain's learned policy, kept as checkpoints named ``policy:<domain>``.

A thin view of ``store.checkpoints`` by domain: list the versions, load one (or the active one) as a ``Policy``,
make one active, roll back. Decisions name the version that advised them ``<domain>/v<version>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..policy import Policy
from ..records import ModelCheckpoint
from .base import DEFAULT_LIMIT
from .checkpoints import weights_artifact
from .domains import Domain, domain_of

if TYPE_CHECKING:
    from . import Store


def policy_name(domain: str) -> str:
    """The name a domain's policy is checkpointed under."""
    return f"policy:{domain}"


def policy_version(domain: str, version: int) -> str:
    """How decisions name the version of a domain's policy that advised them."""
    return f"{domain}/v{version}"


def load_policy(store: Any, checkpoint: ModelCheckpoint) -> Policy:
    """The policy ``checkpoint`` holds, read from the store's artifacts (a database's store or a server's)."""
    return Policy.from_bytes(store.artifacts.read(weights_artifact(checkpoint)))


class Policies:
    """``store.policies``: the versions of each domain's learned policy."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def domain(self, name: str) -> Domain:
        """The domain ``name`` as the project declares it; NotDeclaredError listing those it declares."""
        return domain_of(name, {domain.name: domain for domain in self._store.decisions.domains()})

    def list(self, domain: str, *, limit: int = DEFAULT_LIMIT, offset: int = 0) -> list[ModelCheckpoint]:
        """The versions of ``domain``'s policy, newest first (their metrics: the off-policy estimates)."""
        return self._store.checkpoints.list(policy_name(self.domain(domain).name), limit=limit, offset=offset)

    def active(self, domain: str) -> ModelCheckpoint | None:
        """The checkpoint of ``domain``'s active policy; None when none is active."""
        return self._store.checkpoints.active(policy_name(self.domain(domain).name))

    def latest(self, domain: str) -> ModelCheckpoint | None:
        """The checkpoint of ``domain``'s newest policy, active or not; None when there is none."""
        return self._store.checkpoints.latest(policy_name(self.domain(domain).name))

    def load(self, checkpoint: ModelCheckpoint) -> Policy:
        """The policy a checkpoint of it holds."""
        return load_policy(self._store, checkpoint)

    def save(self, domain: str, policy: Policy, *, metrics: dict[str, Any] | None = None,
             window: tuple[datetime | None, datetime | None] = (None, None), activate: bool = False) -> ModelCheckpoint:
        """Checkpoint ``policy`` as the next version of ``domain``'s (``activate``: and make it the active one)."""
        return self._store.checkpoints.save(policy_name(self.domain(domain).name), policy.to_bytes(), metrics=metrics,
                                            window=window, activate=activate, media_type="application/json")

    def activate(self, domain: str, version: int) -> ModelCheckpoint:
        """Make version ``version`` of ``domain``'s policy the active one (NotFoundError when there is none)."""
        return self._store.checkpoints.activate(
            self._store.checkpoints.version(policy_name(self.domain(domain).name), version))

    def rollback(self, domain: str) -> ModelCheckpoint:
        """Activate again the version of ``domain``'s policy in use before the active one (ConflictError if none)."""
        return self._store.checkpoints.rollback(policy_name(self.domain(domain).name))
