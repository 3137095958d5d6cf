"""The journal's files: what a session leaves behind is exactly what the database has not taken."""

from rolloutdb.recorder import list_journals
from rolloutdb.recorder._journal import LeftoverFile, SpillFile, header, journal_folder


def test_a_released_spill_file_keeps_only_the_records_not_yet_written(tmp_path):
    folder = journal_folder(tmp_path, "sqlite:///x.db", "p")
    spill = SpillFile(folder, header("sqlite:///x.db", "p", "run", "session-1"))
    spill.append([b'{"n": %d}' % n for n in range(10)])
    lines, offset = spill.read(4)
    assert lines == [b'{"n": %d}' % n for n in range(4)]
    spill.consumed(len(lines), offset)
    spill.release()
    [info] = list_journals(tmp_path)
    assert (info.records, info.run, info.live) == (6, "run", False)
    claimed = LeftoverFile.claim(info.path)
    assert [line for batch in claimed.batches(4) for line in batch] == [b'{"n": %d}' % n for n in range(4, 10)]
    claimed.done(remove=True)
    assert not folder.exists()


def test_a_live_session_s_file_cannot_be_claimed_and_an_emptied_one_is_gone(tmp_path):
    folder = journal_folder(tmp_path, "sqlite:///x.db", "p")
    spill = SpillFile(folder, header("sqlite:///x.db", "p", "run", "session-2"))
    spill.append([b"{}", b"{}"])
    assert LeftoverFile.claim(spill.path) is None and list_journals(tmp_path)[0].live
    lines, offset = spill.read(10)
    spill.consumed(len(lines), offset)
    assert not spill.path.exists()
    spill.release()
    assert list_journals(tmp_path) == []
