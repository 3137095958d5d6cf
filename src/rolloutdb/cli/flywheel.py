"""`rolloutdb flywheel`: the learning loop of a domain (run it, ask its policy, list, activate and roll back its
versions, export its samples)."""

from __future__ import annotations

import json as json_module
import sys
from pathlib import Path
from typing import Annotated

import typer

from .options import Json, group
from .output import (Column, console, escaped_json, fail, format_time, plural, print_fields, print_json, print_table,
                     printable, progress_bar, reports_errors)

flywheel_app = group("The learning flywheel: decisions → rewards → samples → a trained policy → advice.")
Domain = Annotated[str, typer.Option("--domain", help="The domain (declared; memory is built in).")]

STAGE_NAMES = {"evaluate": "Evaluating rewards", "samples": "Building samples", "train": "Training",
               "estimate": "Estimating off-policy", "checkpoint": "Checkpointing"}


@flywheel_app.command("run")
@reports_errors
def flywheel_run(
    ctx: typer.Context,
    domain: Domain = "memory",
    days: Annotated[float | None, typer.Option(help="Learn from the decisions taken in the last DAYS days "
                                                    "(default: all that are evaluated).")] = None,
    train: Annotated[bool, typer.Option("--train", help="Train a candidate policy, estimate it off-policy, "
                                                        "checkpoint it and activate it if it is better.")] = False,
    rules: Annotated[Path | None, typer.Option(help="Reward rules (TOML) instead of the built-in ones.")] = None,
    epsilon: Annotated[float, typer.Option(help="The candidate's exploration rate.")] = 0.1,
    seed: Annotated[int, typer.Option(help="The holdout split and the bootstrap resamples.")] = 0,
    json: Json = False,
) -> None:
    """Run the flywheel once: evaluate due decisions, build samples, and with --train train, estimate, checkpoint
    and activate only if better.

    Example: rolloutdb flywheel run --domain memory --days 30 --train
    """
    with ctx.obj.connect() as store, progress_bar() as progress:
        bars: dict[str, int] = {}

        def follow(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(STAGE_NAMES.get(stage, stage), total=None)
            progress.update(bars[stage], completed=done, total=total)

        report = store.run_flywheel(domain, days=days, rules=None if rules is None else str(rules), train=train,
                                    epsilon=epsilon, seed=seed, on_progress=follow)
    if json:
        print_json([report])
        return
    window = f"{format_time(report.window_start)} to {format_time(report.window_end)}" if report.window_start \
        else f"all, to {format_time(report.window_end)}"
    print_fields([("domain", report.domain), ("window", window), ("decisions evaluated", report.evaluated),
                  ("samples built", report.samples), ("trained", report.trained),
                  ("training samples", report.training_samples if report.trained else None),
                  ("holdout samples", report.holdout_samples if report.trained else None)])
    if report.trained:
        print_table("Off-policy estimates (per decision, on the holdout)",
                    (Column("policy", text=True), Column("estimate", justify="right"), Column("low", justify="right"),
                     Column("high", justify="right")),
                    ((name, f"{e.value:+.4f}", f"{e.low:+.4f}", f"{e.high:+.4f}")
                     for name, e in (("logged decisions", report.logging), ("active policy (DR)", report.incumbent),
                                     ("candidate (IPS)", report.ips), ("candidate (DR)", report.dr),
                                     ("gain (DR − active)" if report.incumbent else "gain (DR − logged)", report.gain))
                     if e is not None))
    print_fields([("checkpoint", None if report.version is None else f"version {report.version} ({report.checkpoint_id})"),
                  ("active policy", report.policy_version or "none")])
    console.print(printable(report.verdict), style="green" if report.activated else None, soft_wrap=True)


@flywheel_app.command("advise")
@reports_errors
def flywheel_advise(
    ctx: typer.Context,
    state: Annotated[str, typer.Argument(help="The state, a JSON object of its features.")],
    domain: Domain = "memory",
    json: Json = False,
) -> None:
    """Ask the domain's active policy what to do in a state (with its exploration).

    Example: rolloutdb flywheel advise --domain memory '{"kind": "fact", "length": 42, "similar_memories": 0}'
    """
    try:
        features = json_module.loads(state)
    except ValueError as exc:
        fail(f"the state is not JSON: {exc}")
    with ctx.obj.connect() as store:
        advice = store.advisor(domain).advise(features)
    if json:
        print_json([advice])
        return
    print_fields([("action", advice.action), ("propensity", f"{advice.propensity:.3f}"),
                  ("policy", advice.policy_version)])
    print_table("Probabilities", (Column("action", text=True), Column("probability", justify="right")),
                ((action, f"{p:.3f}") for action, p in advice.probabilities.items()))


@flywheel_app.command("policies")
@reports_errors
def flywheel_policies(
    ctx: typer.Context,
    domain: Domain = "memory",
    limit: Annotated[int, typer.Option(help="At most this many versions.")] = 100,
    json: Json = False,
) -> None:
    """List the versions of the domain's policy, newest first: active, DR estimate, gain, samples, created.

    Example: rolloutdb flywheel policies --domain memory
    """
    with ctx.obj.connect() as store:
        versions = store.policies.list(domain, limit=limit)
    if json:
        print_json(versions)
        return
    if not versions:
        console.print(printable(f"No policy of domain {domain!r} yet: `rolloutdb flywheel run --domain {domain} "
                                "--train` trains one."))
        return
    print_table(None, (Column("version", justify="right"), Column("active"), Column("DR", justify="right"),
                       Column("gain", justify="right"), Column("samples", justify="right"), Column("created"),
                       Column("id")),
                ((c.version, c.active, _metric(c.metrics, "dr"), _metric(c.metrics, "gain"), c.metrics.get("samples"),
                  format_time(c.created_at), c.id) for c in versions))


def _metric(metrics: dict, name: str) -> str | None:
    value = metrics.get(name)
    return f"{value['value']:+.4f}" if isinstance(value, dict) and "value" in value else None


@flywheel_app.command("activate")
@reports_errors
def flywheel_activate(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The version of the domain's policy to make active.")],
    domain: Domain = "memory",
    json: Json = False,
) -> None:
    """Make a version of the domain's policy the active one (advisors pick it up on refresh).

    Example: rolloutdb flywheel activate 3 --domain memory
    """
    with ctx.obj.connect() as store:
        checkpoint = store.policies.activate(domain, version)
    if json:
        print_json([checkpoint])
        return
    console.print(printable(f"Version {checkpoint.version} of the {domain!r} policy is the active one."), soft_wrap=True)


@flywheel_app.command("rollback")
@reports_errors
def flywheel_rollback(
    ctx: typer.Context,
    domain: Domain = "memory",
    json: Json = False,
) -> None:
    """Activate again the version of the domain's policy that was in use before the active one.

    Example: rolloutdb flywheel rollback --domain memory
    """
    with ctx.obj.connect() as store:
        checkpoint = store.policies.rollback(domain)
    if json:
        print_json([checkpoint])
        return
    console.print(printable(f"Rolled back: version {checkpoint.version} of the {domain!r} policy is the active one."),
                  soft_wrap=True)


@flywheel_app.command("export-samples")
@reports_errors
def flywheel_export_samples(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="File to write: .jsonl or .parquet.", show_default=False)],
    domain: Domain = "memory",
    json: Json = False,
) -> None:
    """Write the domain's samples (state, action, reward, next state, done, propensity) to a file.

    Example: rolloutdb flywheel export-samples --domain memory --out memory-samples.parquet
    """
    with ctx.obj.connect() as store:
        rows = store.samples.export(out, domain=domain)
    if json:
        sys.stdout.write(escaped_json(json_module.dumps({"path": str(out), "rows": rows})) + "\n")
        return
    console.print(printable(f"Wrote {plural(rows, 'sample')} to {out}."), soft_wrap=True)
