"""One turn of the learning flywheel for a domain: evaluate → samples → train → off-policy evaluation → checkpoint →
activate only if better.

The domain's due decisions are evaluated by its reward rules (``store.rewards``), and the samples of those taken
in the window (the last ``days``, or all) built (``store.samples``). With ``train``, a candidate policy (``rolloutdb.policy``) is fitted
on most of the samples and estimated (``rolloutdb.offpolicy``: IPS and doubly robust, with bootstrap intervals)
on the rest, which it never saw, against what the logged decisions earned there. It is checkpointed either way,
its estimates as its metrics, and becomes the domain's active policy only when the interval of its gain lies
above zero: its gain over the active policy (both estimated doubly robust on the same samples), or, with none
active, over what the logged decisions earned. A decision logged without a propensity counts as taken with certainty (a deterministic policy's).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..offpolicy import (DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, action_indices, check_bootstrap, check_confidence,
                         evaluate)
from ..policy import (DEFAULT_ALPHA, DEFAULT_EPSILON, FeatureSchema, MissingFeaturesError, check_alpha, check_epsilon,
                      train_policy)
from ..records import FlywheelReport
from .policies import policy_version
from .base import whole_number

if TYPE_CHECKING:
    from . import Store

MIN_SAMPLES = 50  # fewer samples than this train nothing: estimates from them would be noise
DEFAULT_HOLDOUT = 0.3  # the share of samples a candidate is estimated on, not trained on
STAGES = ("evaluate", "samples", "train", "estimate", "checkpoint")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def run_flywheel(store: Store, domain: str, *, days: float | None = None, rules: Any = None, train: bool = False,
                 epsilon: float = DEFAULT_EPSILON, alpha: float = DEFAULT_ALPHA, holdout: float = DEFAULT_HOLDOUT,
                 bootstrap: int = DEFAULT_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0,
                 on_progress: Progress | None = None) -> FlywheelReport:
    """See ``Store.run_flywheel``."""
    actions = store.policies.domain(domain).actions
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 36500):
        raise InvalidInputError(f"days is how far back the window goes, more than 0 and at most 36500, got {days!r:.80}")
    if not isinstance(train, bool):
        raise InvalidInputError(f"train must be True or False, got {train!r:.80}")
    check_epsilon(epsilon)
    check_alpha(alpha)
    check_bootstrap(bootstrap)
    check_confidence(confidence)
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
        raise InvalidInputError(f"holdout is the share of samples kept to estimate on, between 0 and 1, got {holdout!r:.80}")
    whole_number("seed", seed, 0, 2 ** 63 - 1)
    progress = on_progress or (lambda stage, done, total: None)
    until = store.now()
    since = None if days is None else until - timedelta(days=days)
    report = FlywheelReport(domain=domain, window_start=since, window_end=until)

    progress("evaluate", 0, 1)
    report.evaluated = store.rewards.evaluate(domain, rules=rules).evaluated
    progress("evaluate", 1, 1)
    report.samples = store.samples.build(domain, since=since, until=until,
                                         on_progress=lambda done, total: progress("samples", done, total))
    active = store.policies.active(domain)
    report.policy_version = None if active is None else policy_version(domain, active.version)
    if not train:
        report.verdict = "not asked to train (--train)"
        return report

    progress("train", 0, 1)
    samples = [s for s in store.samples.of(domain, since=since, until=until)
               if isinstance(s.state, Mapping) and s.reward is not None]
    if len(samples) < MIN_SAMPLES:
        report.verdict = f"{len(samples)} samples with a state and a reward: at least {MIN_SAMPLES} train a policy"
        return report
    features = FeatureSchema.infer([s.state for s in samples]).names  # those every sample has
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(samples) * holdout))
    kept, trained_on = [samples[i] for i in order[:cut]], [samples[i] for i in order[cut:]]
    candidate = train_policy(domain, actions, [s.state for s in trained_on], [s.action for s in trained_on],
                             [s.reward for s in trained_on], [s.propensity for s in trained_on],
                             features=features, epsilon=epsilon, alpha=alpha)
    report.trained, report.training_samples, report.holdout_samples = True, len(trained_on), len(kept)
    progress("train", 1, 1)

    progress("estimate", 0, 1)
    states = [s.state for s in kept]
    incumbent, against = _incumbent(store, active, actions, states)
    estimates = evaluate(candidate.probabilities_many(states), action_indices(actions, [s.action for s in kept]),
                         [s.reward for s in kept], [1.0 if s.propensity is None else s.propensity for s in kept],
                         candidate.predict_many(states), baseline=incumbent, bootstrap=bootstrap,
                         confidence=confidence, seed=seed)
    report.logging, report.ips, report.dr = estimates.logging, estimates.ips, estimates.dr
    report.incumbent, report.gain = estimates.baseline, estimates.gain
    progress("estimate", 1, 1)

    progress("checkpoint", 0, 1)
    metrics: dict[str, Any] = {
        "samples": len(samples), "training_samples": len(trained_on), "holdout_samples": len(kept),
        "confidence": confidence, "epsilon": epsilon, "alpha": alpha, "features": features,
        **{name: getattr(estimates, name).model_dump() for name in ("logging", "ips", "dr", "gain")},
        "gain_over": against}
    decided = [s.decided_at for s in samples if s.decided_at is not None]
    saved = store.policies.save(domain, candidate, metrics=metrics,
                                window=(min(decided, default=None), max(decided, default=None)),
                                activate=estimates.better)
    report.checkpoint_id, report.version, report.activated = saved.id, saved.version, estimates.better
    if estimates.better:
        report.policy_version = policy_version(domain, saved.version)
    gain = estimates.gain
    report.verdict = (f"activated: its estimated gain over {against} is {gain.value:+.4f} "
                      f"({confidence:.0%} interval {gain.low:+.4f} to {gain.high:+.4f})" if estimates.better else
                      f"kept inactive: its estimated gain over {against} is {gain.value:+.4f}, but the "
                      f"{confidence:.0%} interval ({gain.low:+.4f} to {gain.high:+.4f}) does not lie above zero")
    progress("checkpoint", 1, 1)
    return report


def _incumbent(store: Store, active, actions, states) -> tuple[Any, str]:
    """The active policy's probabilities on ``states``, to beat; (None, "the logged decisions") when there is
    none, or it reads features these states lack, or other actions."""
    if active is None:
        return None, "the logged decisions"
    policy = store.policies.load(active)
    if tuple(policy.actions) != tuple(actions):
        return None, "the logged decisions"
    try:
        return policy.probabilities_many(states), f"the active policy ({policy_version(policy.domain, active.version)})"
    except MissingFeaturesError:
        return None, "the logged decisions"
