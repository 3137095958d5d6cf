"""`rolloutdb demo`: train the sample agent, recording everything, and show what was recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from .output import console, progress_bar, reports_errors
from .runs import print_comparison, print_run

commands = typer.Typer()  # top level: demo


@commands.command()
@reports_errors
def demo(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(
        help="Run name. Default: demo-<timestamp> (with -2, -3 ... if taken). A finished run's name is refused.",
        show_default=False)] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed learns the same way.")] = 0,
) -> None:
    """Train a small agent with GRPO-style groups, recording everything; show the run and eval vs baseline.

    The run, its baseline and its evals are recorded with rolloutdb.Recorder, as in a real training loop.

    Example: rolloutdb demo --url sqlite:///demo.db --steps 100 --seed 3
    """
    from ..demo import train_demo

    with ctx.obj.connect(create=True) as store:
        with progress_bar() as progress:
            task = progress.add_task("Training", total=steps)

            def stepped(number: int) -> None:
                progress.advance(task)
                if number + 1 == steps:  # the recorder may show its own bar while it writes the rest
                    progress.stop()

            result = train_demo(store, name, steps=steps, seed=seed,
                                on_start=lambda run: progress.update(task, description=f"Training {run}"),
                                on_step=stepped)
        print_run(store, store.runs.get(result.train))
        console.print()
        print_comparison(store.compare_runs(result.baseline, result.final_eval))
