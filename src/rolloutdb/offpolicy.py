"""Off-policy evaluation: what a candidate policy would earn, estimated from what a logging policy did.

Each logged sample is a state, the action the logging policy took with probability ``propensity``, and the reward
that followed. Three estimates, each a mean over samples, each with a bootstrap confidence interval:

- logging: the mean reward itself, what the logging policy earned;
- IPS (inverse propensity scoring): ``π(a|x) / μ(a|x) · r``, unbiased when propensities are right, noisy when
  they are small;
- DR (doubly robust): ``Σ_b π(b|x) q(x, b) + π(a|x) / μ(a|x) · (r − q(x, a))``, a reward model ``q``
  corrected by the weighted error it makes on the action taken; unbiased if either the propensities or the
  model are right, and less noisy than IPS.

The candidate is better when the interval of its DR gain lies above zero: over the logging policy, or over a
``baseline`` policy (the one in use) estimated by DR on the same samples with the same model. The bootstrap
resamples the same samples on both sides, so the comparison is paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError
from .records import Estimate
from .policy import require_numpy

DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
MAX_BOOTSTRAP = 100_000  # resamples: more would only take longer


@dataclass(frozen=True)
class OffPolicyReport:
    """A candidate policy against the logging policy, on the same samples."""

    samples: int
    confidence: float
    logging: Estimate
    ips: Estimate
    dr: Estimate
    baseline: Estimate | None  # the baseline policy's DR, when one was given
    gain: Estimate  # DR minus the baseline's DR (or minus logging), paired

    @property
    def better(self) -> bool:
        """Whether the candidate beats the logging policy with the report's confidence."""
        return self.gain.low > 0



def check_confidence(confidence: Any) -> float:
    """``confidence`` if it is an interval's confidence (a number between 0 and 1); else InvalidInputError."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise InvalidInputError(f"confidence is between 0 and 1, got {confidence!r:.80}")
    return float(confidence)


def check_bootstrap(bootstrap: Any) -> int:
    """``bootstrap`` if it is a number of resamples the intervals may take; else InvalidInputError."""
    if type(bootstrap) is not int or not 10 <= bootstrap <= MAX_BOOTSTRAP:
        raise InvalidInputError(f"bootstrap is a number of resamples from 10 to {MAX_BOOTSTRAP:,}, got {bootstrap!r:.80}")
    return bootstrap


def evaluate(candidate, taken, rewards, propensities, predicted, *, baseline=None, bootstrap: int = DEFAULT_BOOTSTRAP,
             confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> OffPolicyReport:
    """Estimate the candidate's value from logged samples.

    ``candidate``: per sample, the candidate's probability of each action (rows: samples, columns: actions);
    ``taken``: the index of the action each sample took; ``rewards``; ``propensities``: the logging policy's
    probability of that action; ``predicted``: a reward model's prediction for each action (same shape as
    ``candidate``), fitted on other samples than these for an honest DR; ``baseline``: another policy's
    probabilities (same shape), to gain over instead of the logging policy."""
    numpy = require_numpy()
    pi = numpy.asarray(candidate, dtype=float)
    q = numpy.asarray(predicted, dtype=float)
    a = numpy.asarray(taken, dtype=int)
    r = numpy.asarray(rewards, dtype=float)
    mu = numpy.asarray(propensities, dtype=float)
    n = len(r)
    if n == 0:
        raise InvalidInputError("no samples to evaluate a policy on")
    if pi.shape != q.shape or pi.shape[0] != n or len(a) != n or len(mu) != n:
        raise InvalidInputError("candidate, taken, rewards, propensities and predicted must describe as many samples")
    if ((mu <= 0) | (mu > 1)).any():
        raise InvalidInputError("a propensity is the probability the logging policy gave its action: "
                                "greater than 0, at most 1")
    check_confidence(confidence)
    check_bootstrap(bootstrap)
    rows = numpy.arange(n)

    def doubly_robust(probabilities):
        return (probabilities * q).sum(axis=1) + probabilities[rows, a] / mu * (r - q[rows, a])

    terms = {"logging": r, "ips": pi[rows, a] / mu * r, "dr": doubly_robust(pi)}
    if baseline is not None:
        base = numpy.asarray(baseline, dtype=float)
        if base.shape != pi.shape:
            raise InvalidInputError("baseline gives each sample's probabilities of the same actions as candidate")
        terms["baseline"] = doubly_robust(base)
    terms["gain"] = terms["dr"] - terms.get("baseline", r)
    rng = numpy.random.default_rng(seed)
    means = {name: [] for name in terms}
    for start in range(0, bootstrap, 100):  # resample in slices: memory stays at 100 × samples indices
        picks = rng.integers(0, n, size=(min(100, bootstrap - start), n))
        for name, values in terms.items():
            means[name].append(values[picks].mean(axis=1))
    tail = (1 - confidence) / 2 * 100

    def estimate(name: str) -> Estimate:
        spread = numpy.concatenate(means[name])
        low, high = numpy.percentile(spread, [tail, 100 - tail])
        return Estimate(value=float(terms[name].mean()), low=float(low), high=float(high))

    return OffPolicyReport(n, confidence, estimate("logging"), estimate("ips"), estimate("dr"),
                           estimate("baseline") if baseline is not None else None, estimate("gain"))


def action_indices(actions: Sequence[str], taken: Sequence[str]) -> list[int]:
    """Each taken action's index in ``actions``."""
    index = {action: position for position, action in enumerate(actions)}
    try:
        return [index[action] for action in taken]
    except KeyError as exc:
        raise InvalidInputError(f"a sample took action {exc.args[0]!r}, not among {', '.join(actions)}") from None


__all__ = ["OffPolicyReport", "action_indices", "check_bootstrap", "check_confidence", "evaluate"]
