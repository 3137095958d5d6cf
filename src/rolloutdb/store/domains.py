"""Flywheel domains: what a policy decides about (``memory``: which memory operation to take), the actions it may
take there, and the kinds of outcome signal its subjects get. ``memory`` is built in; a project declares others
(``store.decisions.declare``). A name not declared is refused with the declared ones listed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from ..errors import InvalidInputError, NotDeclaredError
from ..records import Record
from .base import validation_message

DomainName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
SignalKind = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]


class Domain(Record):
    """A domain's declared actions and signal kinds."""

    name: DomainName
    actions: list[DomainName] = Field(min_length=1)
    signals: list[SignalKind] = Field(min_length=1)

    @field_validator("actions", "signals")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("each name once")
        return names

    def check_action(self, action: Any) -> str:
        if action not in self.actions:
            raise NotDeclaredError(f"unknown action {action!r:.80} in domain {self.name!r}; its actions: "
                                   f"{', '.join(self.actions)}")
        return action

    def check_signal(self, kind: Any) -> str:
        if kind not in self.signals:
            raise NotDeclaredError(f"unknown signal kind {kind!r:.80} in domain {self.name!r}; its kinds: "
                                   f"{', '.join(self.signals)}")
        return kind


MEMORY = Domain(name="memory", actions=["insert", "update", "ignore", "delete"], signals=["hit", "quality", "feedback"])
BUILT_IN: dict[str, Domain] = {MEMORY.name: MEMORY}


def domain_of(name: Any, declared: Mapping[str, Domain]) -> Domain:
    """The domain ``name`` among ``declared``; NotDeclaredError listing them otherwise."""
    if isinstance(name, str) and name in declared:
        return declared[name]
    raise NotDeclaredError(f"unknown domain {name!r:.80}; declared domains: {', '.join(sorted(declared))} "
                           "(store.decisions.declare adds one)")


def new_domain(name: Any, actions: Iterable[str], signals: Iterable[str]) -> Domain:
    """A domain from its parts, or InvalidInputError naming what is wrong."""
    if isinstance(actions, str) or isinstance(signals, str):
        raise InvalidInputError("actions and signals are lists of names, not one string")
    try:
        return Domain(name=name, actions=list(actions), signals=list(signals))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid domain: {validation_message(exc)}") from None
    except TypeError as exc:
        raise InvalidInputError(f"invalid domain: {exc}") from None
