"""Records that carry content (a turn's screenshots): the record's JSON line and the content beside it, as it is.

The training loop only keeps a reference to the bytes it was given (a ``Framed`` entry): neither hashed, copied
nor encoded there. The pump's thread writes them out as they are, the writer process hashes and stores them.

Requests to the writer and journal files are streams of entries with a newline between two: a record's JSON
line, or a frame. JSON text never holds a byte below 0x20 (orjson escapes control characters), so a NUL byte
starting an entry marks a frame: NUL, the lengths (``HEAD``: the JSON line's, how many contents; then ``PART``
for each: its role, as an index into the artifact roles, and its size), the JSON line, then the contents.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import IO, Any, Union

import orjson

from ..store.artifacts import ROLES

MARK = b"\x00"
HEAD = struct.Struct("!IH")
PART = struct.Struct("!BQ")
# What a frame cut off by a crash (the journal's last entry) is read as: not JSON, so it is refused as unreadable,
# as a line cut off is; and no NUL or newline in it, to be mistaken for a frame or two entries.
CUT_OFF = b"(a record with screenshots, cut off by a crash)"


class Framed:
    """A record's JSON line with content by role (bytes, never copied)."""

    __slots__ = ("line", "contents")

    def __init__(self, line: bytes, contents: dict[str, bytes]) -> None:
        self.line, self.contents = line, contents

    def __len__(self) -> int:  # what it adds to a batch, as a line's length does
        return len(self.line) + sum(map(len, self.contents.values()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Framed) and (self.line, self.contents) == (other.line, other.contents)

    def pieces(self) -> list[bytes]:
        head = [MARK, HEAD.pack(len(self.line), len(self.contents))]
        head += [PART.pack(ROLES.index(role), len(content)) for role, content in self.contents.items()]
        return [b"".join(head), self.line, *self.contents.values()]

    def record(self) -> dict[str, Any]:
        """The record, its contents under ``screenshots`` (what ``store.recording`` takes)."""
        return {**orjson.loads(self.line), "screenshots": self.contents}


Entry = Union[bytes, Framed]


def pieces(entries: Iterable[Entry]) -> list[bytes]:
    """The entries as a stream, a newline between two (as ``b"\n".join`` puts them), in pieces to write one after
    the other: the contents are not copied."""
    out: list[bytes] = []
    for entry in entries:
        if out:
            out.append(b"\n")
        if type(entry) is Framed:
            out += entry.pieces()
        else:
            out.append(entry)
    return out


def stream(entries: list[Entry]) -> bytes | list[bytes]:
    """The entries as a stream: one bytes when none is framed (a C-level join), else ``pieces``."""
    try:
        return b"\n".join(entries)
    except TypeError:  # a framed one among them
        return pieces(entries)


def split(stream: bytes) -> list[Entry]:
    """The entries of a stream (its last newline left off, as ``b"\\n".join`` makes them)."""
    if MARK not in stream:  # no frame: the common case, one C-level split
        return stream.split(b"\n")
    entries: list[Entry] = []
    position = 0
    while position <= len(stream):
        if stream[position:position + 1] == MARK:
            entry, position = _frame(memoryview(stream), position + 1)
            entries.append(entry)
            position += 1  # its newline
        else:
            end = stream.find(b"\n", position)
            end = len(stream) if end < 0 else end
            entries.append(stream[position:end])
            position = end + 1
    return entries


def _frame(view: memoryview, position: int) -> tuple[Framed, int]:
    line_size, count = HEAD.unpack_from(view, position)
    position += HEAD.size
    parts = [PART.unpack_from(view, position + i * PART.size) for i in range(count)]
    position += count * PART.size
    line = bytes(view[position:position + line_size])
    position += line_size
    contents = {}
    for role, size in parts:
        contents[ROLES[role]] = bytes(view[position:position + size])
        position += size
    return Framed(line, contents), position


def read(file: IO[bytes]) -> Entry | None:
    """The next entry of a stream in a file (its newline read too), or None at its end."""
    first = file.read(1)
    if first != MARK:
        rest = file.readline()
        return (first + rest).rstrip(b"\n") if first else None
    head = file.read(HEAD.size)
    if len(head) < HEAD.size:
        return CUT_OFF
    line_size, count = HEAD.unpack(head)
    parts = file.read(count * PART.size)
    wanted = line_size + sum(PART.unpack_from(parts, i * PART.size)[1] for i in range(len(parts) // PART.size))
    body = file.read(wanted)
    if len(parts) < count * PART.size or len(body) < wanted:
        return CUT_OFF
    file.read(1)  # its newline
    entry, _ = _frame(memoryview(head + parts + body), 0)
    return entry


def entries(file: IO[bytes]) -> Iterator[Entry]:
    """The entries from where the file is to its end, blank lines left out."""
    while (entry := read(file)) is not None:
        if type(entry) is Framed or entry.strip():
            yield entry


def decode(entry: Entry) -> dict[str, Any]:
    """An entry as the record ``store.recording.apply`` takes."""
    return entry.record() if type(entry) is Framed else orjson.loads(entry)
