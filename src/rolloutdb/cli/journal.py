"""`rolloutdb journal`: what recorders kept on disk while the database was away or slow."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import JOURNAL_DIRECTORY
from .options import Json, group
from .output import Column, console, format_age, format_bytes, plural, print_json, print_table, printable, progress_bar
from .output import reports_errors

if TYPE_CHECKING:
    from ..recorder import JournalInfo

journal_app = group("What recorders kept on disk while the database was away or slow: list it, replay it.")

JournalDir = Annotated[Path, typer.Option(
    "--dir", help="The journal directory (the recorders' journal_dir).", file_okay=False)]


def journal_age(info: JournalInfo, now: datetime) -> str:
    """How long ago the file's recorder started spilling, e.g. "3m 07s ago"; the header's text if unreadable."""
    try:
        created = datetime.fromisoformat(info.created_at)
    except ValueError:
        return printable(info.created_at)
    return format_age(created if created.tzinfo else created.replace(tzinfo=timezone.utc), now)


@journal_app.command("ls")
@reports_errors
def journal_ls(directory: JournalDir = Path(JOURNAL_DIRECTORY), json: Json = False) -> None:
    """List the journal files of every database and project, and whether each one's recorder still runs.

    A recorder keeps in a journal file what the database has not taken yet (away, or slower than training).
    This reads only the files: it needs no database, and ignores --url and --project.

    Example: rolloutdb journal ls --dir /scratch/run-7/.rolloutdb-journal
    """
    from ..recorder import list_journals

    where = printable(str(directory.resolve()))
    journals = list_journals(directory)
    if json:
        print_json(journals)
        return
    if not journals:
        console.print(f"No journal in {where}.")
        return
    now = datetime.now(timezone.utc)
    print_table(
        f"Journal in {where}",
        (Column("run"), Column("project", drop=3), Column("records", justify="right"),
         Column("size", justify="right", drop=2), Column("created", drop=1), Column("recorder"),
         Column("database", text=True, drop=4)),
        ((printable(info.run), printable(info.project), f"{info.records:,}", format_bytes(info.size),
          journal_age(info, now), "live" if info.live else "gone", printable(info.database)) for info in journals),
    )
    gone = sum(not info.live for info in journals)
    console.print(f"{plural(len(journals), 'file')}, {sum(info.records for info in journals):,} records. "
                  + (f"{gone} of gone recorders: `rolloutdb journal replay --url URL --project NAME` writes "
                     "them into the database and project they were recorded for." if gone
                     else "Their recorders are live and write them themselves."), soft_wrap=True)


@journal_app.command("replay")
@reports_errors
def journal_replay(ctx: typer.Context, directory: JournalDir = Path(JOURNAL_DIRECTORY)) -> None:
    """Replay the journal files of gone recorders into the database and project of --url/--project.

    Oldest first, with a progress bar; each file is removed once replayed. Refused records are listed.
    Files of live recorders (they write them themselves) and of other databases or projects are left alone.

    Example: rolloutdb journal replay --url postgresql://db/rl --project team-a
    """
    from ..config import display_url
    from ..recorder import count_journal_records, journal_folder, list_journals, replay_journals

    where = printable(str(directory.resolve()))
    with ctx.obj.connect(create=True) as store:
        total = count_journal_records(store, directory)
        with progress_bar() as progress:
            task = progress.add_task("Replaying the journal", total=total)
            result = replay_journals(store, directory, on_batch=lambda records: progress.advance(task, records))
        target = f"{printable(display_url(store.url))}, project {printable(store.project)}"
        ours = journal_folder(directory, store.url, store.project)
    others = [info for info in list_journals(directory) if info.path.parent != ours]
    if result.files:
        console.print(f"Replayed {plural(result.files, 'journal file')} into {target}: "
                      f"{result.written:,} records written, {len(result.rejected):,} refused.", soft_wrap=True)
    else:
        console.print(f"Nothing to replay into {target} from {where}.", soft_wrap=True)
    if result.rejected:
        console.print("Refused by the database (not written; the file is removed all the same):")
        for reason in result.rejected:
            console.print(f"  {printable(reason)}", soft_wrap=True)
    if result.live:
        console.print(f"Skipped {plural(len(result.live), 'file')} whose recorder still runs (it writes "
                      f"{'them' if len(result.live) > 1 else 'it'} itself):")
        for path in result.live:
            console.print(f"  {printable(str(path))}", soft_wrap=True)
    if others:
        console.print(f"{plural(len(others), 'other file')} in {where} "
                      f"{'are' if len(others) > 1 else 'is'} for other databases or projects, left untouched: "
                      f"replay {'them' if len(others) > 1 else 'it'} with its --url/--project (`rolloutdb journal ls` "
                      "shows which).", soft_wrap=True)
