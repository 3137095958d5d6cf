"""`rolloutdb decisions` (the flywheel's why-log) and `rolloutdb flywheel` (evaluate rewards, their statistics, import
a mem0 history database; run the whole loop, ask the policy, list, activate and roll back its versions, export
samples)."""

from __future__ import annotations

import json as json_module
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from .options import Json, Wide, group
from .output import (Column, answered_without_table, console, escaped_json, fail, format_json, format_time,
                     parse_duration, plural, print_fields, print_json, print_table, printable, progress_bar,
                     reports_errors, short_ids)

decisions_app = group("The flywheel's why-log: the decisions a policy took, with their reason, state and reward.")
flywheel_app = group("The learning flywheel: decisions → rewards → samples → a trained policy → advice. Evaluate "
                     "rewards, show their statistics, import a mem0 history database, run the whole loop, ask the "
                     "policy, list, activate and roll back its versions.")

Domain = Annotated[str, typer.Option(help="The flywheel domain (declared; memory is built in).")]


def number(value: float | None, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def since_time(store, since: str | None) -> datetime | None:
    return None if since is None else store.now() - parse_duration(since)


@decisions_app.command("ls")
@reports_errors
def decisions_ls(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Option(help="Only this domain's decisions.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only the decisions about this subject (its id).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action's decisions.")] = None,
    policy_version: Annotated[str | None, typer.Option(help="Only those of this policy version.")] = None,
    evaluated: Annotated[bool | None, typer.Option("--evaluated/--not-evaluated", show_default=False,
                                                   help="Only those with a reward, or only those without.")] = None,
    since: Annotated[str | None, typer.Option(help="Only those taken this long ago or later: 12h, 7d, ...",
                                              show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many decisions.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List decisions, newest first: when, domain, subject, action, reason, policy version, propensity, reward.

    Example: rolloutdb decisions ls --domain memory --action delete --since 7d
    """
    with ctx.obj.connect() as store:
        decisions = store.decisions.list(domain, subject_id=subject, action=action, policy_version=policy_version,
                                         evaluated=evaluated, since=since_time(store, since), limit=limit,
                                         offset=offset)
    filtered = (domain, subject, action, policy_version, evaluated, since) != (None,) * 6
    if answered_without_table(decisions, json=json, noun="decisions", where=f"project {store.project!r}",
                              filtered=filtered):
        return
    ids = short_ids(decision.id for decision in decisions)
    print_table(
        None, (Column("id", drop=4), Column("taken"), Column("domain", drop=3), Column("subject"), Column("action"),
               Column("reason", text=True, drop=2), Column("policy", drop=1), Column("p", justify="right", drop=1),
               Column("reward", justify="right"), Column("state", text=True, drop=5)),
        ((decision.id if wide else ids[decision.id], format_time(decision.created_at), decision.domain, decision.subject_id, decision.action,
          decision.reason, decision.policy_version, number(decision.propensity, 2), number(decision.reward),
          None if decision.state is None else format_json(decision.state))
         for decision in decisions),
        wide=wide,
    )


@flywheel_app.command("stats")
@reports_errors
def flywheel_stats(
    ctx: typer.Context,
    domain: Domain = "memory",
    since: Annotated[str | None, typer.Option(help="Only decisions taken this long ago or later: 30d, ...",
                                              show_default=False)] = None,
    policy_version: Annotated[str | None, typer.Option(help="Only this policy version's decisions.")] = None,
    json: Json = False,
) -> None:
    """Rewards per action and policy version: evaluated decisions, mean reward, standard deviation and the 95%
    confidence interval of the mean.

    Example: rolloutdb flywheel stats --domain memory --since 30d
    """
    with ctx.obj.connect() as store:
        stats = store.rewards.statistics(domain, since=since_time(store, since), policy_version=policy_version)
    if answered_without_table(stats, json=json, noun=f"evaluated {domain} decisions",
                              where=f"project {store.project!r}", filtered=(since, policy_version) != (None, None)):
        return
    print_table(
        None, (Column("action"), Column("policy"), Column("decisions", justify="right"),
               Column("mean reward", justify="right"), Column("std", justify="right"),
               Column("95% interval", justify="right")),
        ((row.action, row.policy_version, row.count, number(row.mean), number(row.std),
          None if row.ci_low is None else f"{row.ci_low:.3f} … {row.ci_high:.3f}")
         for row in stats),
    )


@flywheel_app.command("evaluate")
@reports_errors
def flywheel_evaluate(
    ctx: typer.Context,
    domain: Domain = "memory",
    rules: Annotated[Path | None, typer.Option(help="Reward rules (TOML); default: the built-in memory rules.",
                                               show_default=False)] = None,
    job: Annotated[str | None, typer.Option(help="The job's name: a paused one is resumed; default: a new one.",
                                            show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(help="Decisions per batch (a checkpoint after each).")] = 500,
    force: Annotated[bool, typer.Option("--force", help="Evaluate every due decision again.")] = False,
    json: Json = False,
) -> None:
    """Evaluate the due decisions of a domain by reward rules, as a job (`rolloutdb jobs pause NAME` stops it after
    a batch; running this again with --job NAME resumes it). Evaluating again never counts a signal twice.

    Example: rolloutdb flywheel evaluate --domain memory --rules rewards.toml
    """
    from ..store.reward_rules import RuleSet  # noqa: PLC0415 - a file's mistakes named by line, here

    loaded = None if rules is None else RuleSet.load(rules).source
    with ctx.obj.connect() as store:
        result = store.rewards.evaluate(domain, rules=loaded, batch_size=batch_size, job=job, force=force)
    if json:
        print_json([result])
        return
    console.print(printable(f"Job {result.job!r} {result.status}: {result.evaluated:,} of {result.due:,} due "
                            f"{domain} decisions evaluated, {result.changed:,} rewards changed."), soft_wrap=True)
    if result.status == "paused":
        console.print(printable(f"Resume it with: rolloutdb flywheel evaluate --domain {domain} --job {result.job}"),
                      soft_wrap=True)


@flywheel_app.command("import-mem0")
@reports_errors
def flywheel_import_mem0(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="mem0's history database (a SQLite file, by default "
                                              "~/.mem0/history.db).")],
    policy_version: Annotated[str, typer.Option(help="The policy version the decisions are logged under.")] = "mem0",
    json: Json = False,
) -> None:
    """Import a mem0 history database as memory decisions (ADD → insert, UPDATE → update, DELETE → delete,
    NONE → ignore). Importing it again adds only the rows that are new.

    Example: rolloutdb flywheel import-mem0 ~/.mem0/history.db
    """
    from ..integrations.mem0 import import_mem0_history  # noqa: PLC0415 - only this command needs it

    with ctx.obj.connect(create=True) as store:
        result = import_mem0_history(store, path, policy_version=policy_version)
    if json:
        print_json([result])
        return
    console.print(printable(f"Read {result.read:,} mem0 history rows from {path}: {result.imported:,} new memory "
                            f"decisions, {len(result.skipped):,} skipped."), soft_wrap=True)
    for reason in result.skipped[:20]:
        console.print(printable(f"  skipped {reason}"), soft_wrap=True)
    if len(result.skipped) > 20:
        console.print(f"  ... and {len(result.skipped) - 20:,} more")
    if result.read and not result.imported and result.skipped:
        fail("nothing was imported")


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
    from ..store.reward_rules import RuleSet  # noqa: PLC0415 - a file's mistakes named by line, here

    loaded = None if rules is None else RuleSet.load(rules).source
    with ctx.obj.connect() as store, progress_bar() as progress:
        bars: dict[str, int] = {}

        def follow(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(STAGE_NAMES.get(stage, stage), total=None)
            progress.update(bars[stage], completed=done, total=total)

        report = store.run_flywheel(domain, days=days, rules=loaded, train=train,
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
