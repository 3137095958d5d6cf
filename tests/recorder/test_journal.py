"""The journal's files: what a session leaves behind is exactly what the database has not taken."""

from rolloutdb.recorder import list_journals
from rolloutdb.recorder._frames import CUT_OFF, Framed, decode
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


def test_records_with_screenshots_are_read_back_whole_and_a_frame_cut_off_is_one_unreadable_record(tmp_path):
    folder = journal_folder(tmp_path, "sqlite:///x.db", "p")
    spill = SpillFile(folder, header("sqlite:///x.db", "p", "run", "session-3"))
    content = b"\x00\n" + bytes(range(256)) * 3 + b"\n"  # what would end a line, or start a frame
    entries = [b'{"n": 0}', Framed(b'{"n": 1}', {"before": content, "after": b""}), b'{"n": 2}',
               Framed(b'{"n": 3}', {"screenshot": content[::-1]})]
    spill.append(entries[:2])
    spill.append(entries[2:])
    lines, offset = spill.read(3)
    assert lines == entries[:3]
    assert decode(lines[1]) == {"n": 1, "screenshots": {"before": content, "after": b""}}
    spill.consumed(len(lines), offset)
    spill.release()
    [info] = list_journals(tmp_path)
    assert info.records == 1
    with open(info.path, "r+b") as file:  # a crash in the middle of the frame's content
        file.truncate(info.size - 100)
    claimed = LeftoverFile.claim(info.path)
    [[cut]] = list(claimed.batches(10))
    claimed.done(remove=True)
    assert cut == CUT_OFF  # not JSON: refused as unreadable when replayed, as a line cut off is
