"""`rolloutdb export`: stored rollouts out as training data (TRL, verl, OpenAI), JSONL or Parquet."""

from __future__ import annotations

import enum
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from .. import states
from ..errors import InvalidInputError
from .options import Json, values
from .output import (Column, console, format_bytes, parse_duration, plural, print_json, print_table, printable,
                     progress_bar, reports_errors)

commands = typer.Typer()  # top level: export, import, archive
BUNDLE = "bundle"

Images = enum.StrEnum("Images", {name: name for name in ("files", "embed", "none")})
Observations = enum.StrEnum("Observations", {name: name for name in ("user", "tool")})
Format = Annotated[str, typer.Argument(
    help="trl-lm, trl-lm-chat, trl-prompt-completion[-chat], trl-prompt-only[-chat], trl-preference[-chat], "
         "trl-unpaired-preference[-chat], trl-stepwise, verl, openai-chat or openai-preference; or bundle: every "
         "row of the selected rollouts, ids kept, for `rolloutdb import`.", show_default=False)]


@commands.command()
@reports_errors
def export(
    ctx: typer.Context,
    format: Format,
    out: Annotated[Path, typer.Option("--out", help="File to write: .jsonl or .parquet; a bundle: .tar, or a new "
                                                    "folder.", show_default=False)],
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
    Or, as FORMAT bundle, as a bundle another database imports (`rolloutdb import`): prints the rows of each table.

    Example: rolloutdb export trl-preference-chat --run grpo-arith --min-margin 0.5 --out prefs.parquet

    Example: rolloutdb export bundle --run grpo-arith --children --out grpo-arith.rdb.tar
    """
    if format == BUNDLE:
        given = {"--observations": observations != Observations.user, "--drop-thinking": drop_thinking,
                 "--no-spans": no_spans, "--system": system is not None, "--images": images != Images.files}
        if any(given.values()):
            raise InvalidInputError(f"{', '.join(name for name, set_ in given.items() if set_)}: how messages are "
                                    "made does not apply to a bundle, which holds the rows as stored")
        # A bundle holds every attempt (--all-attempts or not); the flags about rows of training data that are
        # given are refused by export_bundle, naming them.
        dedupe = dedupe or None  # type: ignore[assignment]
        min_margin = min_margin or None  # type: ignore[assignment]
    selection = {key: value for key, value in (
        ("runs", run), ("include_children", children), ("step_min", step_min), ("step_max", step_max),
        ("mode", values(mode)), ("status", values(status)), ("success_only", success_only),
        ("min_reward", min_reward), ("tasks", task), ("dataset", dataset), ("split", split), ("tags", tag),
        ("latest_attempt", None if format == BUNDLE else not all_attempts), ("per_task", per_task),
        ("dedupe", dedupe), ("min_margin", min_margin)) if value is not None}
    if format == BUNDLE:
        with ctx.obj.connect() as store, staged_progress("Exporting") as on_progress:
            written = store.export_bundle(selection, out=out, on_progress=on_progress)
        if json:
            print_json([written])
            return
        print_table("Bundled", (Column("table", text=True), Column("rows", justify="right")), written.rows.items())
        rollouts = written.rows["rollouts"]
        console.print(printable(f"Wrote {plural(rollouts, 'rollout')} with {plural(sum(written.rows.values()), 'row')} "
                                f"and {plural(written.blobs, 'artifact')} to {written.path} "
                                f"({format_bytes(written.bytes)})"
                                + ("" if rollouts else ": the selection gave no rollouts, the bundle is empty") + "."),
                      style="green" if rollouts else "yellow", soft_wrap=True)
        return
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


@contextmanager
def staged_progress(description: str):
    """A progress bar for the stages of a bundle's export, check, import or purge: ``on_progress(stage, done, all)``."""
    with progress_bar() as progress:
        bar = progress.add_task(description, total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            progress.update(bar, description=stage.capitalize(), completed=done, total=total)

        yield on_progress


@commands.command(name="import")
@reports_errors
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The bundle: a .tar file or a folder.", show_default=False)],
    json: Json = False,
) -> None:
    """Import a bundle (`rolloutdb export bundle`, `rolloutdb archive`) into the project, ids kept: rows there already
    are kept as they are, so importing twice changes nothing. The whole bundle is checked first: a corrupted,
    truncated or newer bundle changes nothing.

    Example: rolloutdb import grpo-arith.rdb.tar
    """
    with ctx.obj.connect() as store, staged_progress("Checking") as on_progress:
        imported = store.import_bundle(path, on_progress=on_progress)
    if json:
        print_json([imported])
        return
    print_table("Imported", (Column("table", text=True), Column("added", justify="right"),
                             Column("kept", justify="right")),
                ((name, count, imported.kept[name]) for name, count in imported.inserted.items()))
    console.print(printable(f"Added {plural(sum(imported.inserted.values()), 'row')} from {imported.path}; kept "
                            f"{plural(sum(imported.kept.values()), 'row')} that were there already."),
                  style="green", soft_wrap=True)


@commands.command()
@reports_errors
def archive(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(
        help="Archive finished rollouts that ended longer ago than this: 30s, 15m, 12h, 7d, 1d12h, ...",
        show_default=False)],
    to: Annotated[Path, typer.Option("--to", help="Folder to write the archive's .tar in.", show_default=False)],
    json: Json = False,
) -> None:
    """Bundle the finished rollouts older than --older-than (with everything they hang on) into a .tar in --to,
    read it back and check it, then purge them. Nothing is purged unless the check passes; `rolloutdb import`
    restores them.

    Example: rolloutdb archive --older-than 30d --to /backups/rollouts
    """
    age = parse_duration(older_than)
    with ctx.obj.connect() as store, staged_progress("Exporting") as on_progress:
        done = store.archive(older_than=age, to=to, on_progress=on_progress)
    if json:
        print_json([done])
        return
    console.print(printable(f"Archived {plural(done.bundle.rows['rollouts'], 'rollout')} that ended before "
                            f"{done.cutoff:%Y-%m-%d %H:%M:%S} UTC to {done.bundle.path} "
                            f"({format_bytes(done.bundle.bytes)}), checked it, then purged "
                            f"{plural(done.purged_rollouts, 'rollout')} with {plural(done.purged_turns, 'turn')} and "
                            f"{plural(done.purged_spans, 'span')}."), style="green", soft_wrap=True)
