"""`rolloutdb export`: stored rollouts out as training data (TRL, verl, OpenAI), JSONL or Parquet."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from .. import states
from .options import Json, values
from .output import Column, console, plural, print_json, print_table, printable, progress_bar, reports_errors

commands = typer.Typer()  # top level: export

Images = enum.StrEnum("Images", {name: name for name in ("files", "embed", "none")})
Observations = enum.StrEnum("Observations", {name: name for name in ("user", "tool")})
Format = Annotated[str, typer.Argument(
    help="trl-lm, trl-lm-chat, trl-prompt-completion[-chat], trl-prompt-only[-chat], trl-preference[-chat], "
         "trl-unpaired-preference[-chat], trl-stepwise, verl, openai-chat or openai-preference.", show_default=False)]


@commands.command()
@reports_errors
def export(
    ctx: typer.Context,
    format: Format,
    out: Annotated[Path, typer.Option("--out", help="File to write: .jsonl or .parquet.", show_default=False)],
    run: Annotated[list[str] | None, typer.Option(help="Only rollouts of this run (name or id; repeatable).")] = None,
    children: Annotated[bool, typer.Option("--children", help="With --run: also its eval and baseline runs.")] = False,
    step_min: Annotated[int | None, typer.Option(help="Only rollouts from this step on.")] = None,
    step_max: Annotated[int | None, typer.Option(help="Only rollouts up to this step.")] = None,
    mode: Annotated[list[states.RolloutMode] | None, typer.Option(help="Only this mode (repeatable).")] = None,
    status: Annotated[list[states.RolloutStatus] | None, typer.Option(
        help="Only this status (repeatable). Default: succeeded and failed.")] = None,
    success_only: Annotated[bool, typer.Option("--success-only", help="Only successful rollouts.")] = False,
    min_reward: Annotated[float | None, typer.Option(help="Only rollouts with at least this reward.")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only this task (external id or id; repeatable).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only tasks of this dataset.")] = None,
    split: Annotated[str | None, typer.Option(help="Only tasks of this split.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only tasks carrying this tag (repeatable: all of them).")]
    = None,
    all_attempts: Annotated[bool, typer.Option("--all-attempts",
                                               help="Turns of every attempt, not only the latest.")] = False,
    per_task: Annotated[int | None, typer.Option(help="At most this many rollouts (preference: pairs) per task.")] = None,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="One row per identical trajectory.")] = False,
    min_margin: Annotated[float, typer.Option(help="Preference pairs: the least reward difference.")] = 0.0,
    observations: Annotated[Observations, typer.Option(help="Observations as user messages or as tool results.")]
    = Observations.user,
    drop_thinking: Annotated[bool, typer.Option("--drop-thinking", help="Leave the turns' thinking out.")] = False,
    no_spans: Annotated[bool, typer.Option("--no-spans", help="Build messages from turns even when LLM spans "
                                                              "carry GenAI prompt/completion attributes.")] = False,
    system: Annotated[str | None, typer.Option(help="A system message first.")] = None,
    images: Annotated[Images, typer.Option(help="Screenshots as files beside --out, embedded (Parquet), or none.")]
    = Images.files,
    json: Json = False,
) -> None:
    """Write stored rollouts as training data, streamed: prints how many rows, and which rollouts were skipped and why.

    Example: rolloutdb export trl-preference-chat --run grpo-arith --min-margin 0.5 --out prefs.parquet
    """
    selection = {key: value for key, value in (
        ("runs", run), ("include_children", children), ("step_min", step_min), ("step_max", step_max),
        ("mode", values(mode)), ("status", values(status)), ("success_only", success_only),
        ("min_reward", min_reward), ("tasks", task), ("dataset", dataset), ("split", split), ("tags", tag),
        ("latest_attempt", not all_attempts), ("per_task", per_task), ("dedupe", dedupe),
        ("min_margin", min_margin)) if value is not None}
    policy = {"observations": str(observations), "thinking": "drop" if drop_thinking else "inline",
              "spans": not no_spans, "system": system}
    with ctx.obj.connect() as store, progress_bar() as progress:
        task_bar = progress.add_task("Exporting", total=None)
        summary = store.export(format, selection, out=out, messages=policy, images=str(images),
                               on_progress=lambda done, total: progress.update(task_bar, completed=done, total=total))
    if json:
        print_json([summary])
        return
    console.print(printable(f"Wrote {plural(summary.rows, 'row')} from {plural(summary.rollouts, 'rollout')} to "
                            f"{summary.path}" + (f" ({plural(summary.images, 'screenshot')})" if summary.images else "")
                            + ("" if summary.rows else ": the selection gave no rows, the file is empty") + "."),
                  style="green" if summary.rows else "yellow", soft_wrap=True)
    if summary.skipped:
        print_table("Skipped", (Column("reason", text=True), Column("count", justify="right")),
                    sorted(summary.skipped.items(), key=lambda item: -item[1]))
