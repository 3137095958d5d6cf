"""Messages over a pipe between the recorder and its writer process: a length, then the bytes.

In the training process every system call of the recorder's thread gives up the interpreter lock, and
taking it back makes the training loop stop and wait its turn: a message goes in one write and comes
in one read when the pipe holds it all (``PIPE_BYTES`` each way), not in pieces.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct

PIPE_BYTES = 1 << 20  # a batch of flush_size ordinary records fits
LENGTH = struct.Struct("!Q")
IOV_MAX = 1024  # buffers one writev takes (POSIX's least IOV_MAX)
LARGE_PIECE = 1 << 16  # a piece this large is written as it is, not joined with its neighbours


def pipe() -> tuple[int, int]:
    """A pipe (read end, write end) that holds ``PIPE_BYTES`` where the system allows."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # a system limit below it: the default size works, in more writes
        pass
    return read_end, write_end


def send(fd: int, message: bytes | list[bytes]) -> None:
    """Write one message, given whole or in pieces (BrokenPipeError when the reader is gone). Pieces are written
    as they are, not joined first: a screenshot is not copied, and the kernel copies it without the GIL."""
    parts = [message] if isinstance(message, bytes) else _coalesced(message)
    buffers: list[bytes | memoryview] = [LENGTH.pack(sum(map(len, parts))), *parts]
    while buffers:
        written = os.writev(fd, buffers[:IOV_MAX])
        while buffers and written >= len(buffers[0]):  # the pipe was full: the rest as the reader makes room
            written -= len(buffers.pop(0))
        if written:
            buffers[0] = memoryview(buffers[0])[written:]


def _coalesced(pieces: list[bytes]) -> list[bytes]:
    """Small pieces joined (a writev takes at most ``IOV_MAX``), large ones (contents) kept as they are."""
    parts: list[bytes] = []
    small: list[bytes] = []
    for piece in pieces:
        if len(piece) < LARGE_PIECE:
            small.append(piece)
            continue
        if small:
            parts.append(b"".join(small))
            small = []
        parts.append(piece)
    if small:
        parts.append(b"".join(small))
    return parts


class Receiver:
    """Reads messages from a pipe's read end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def ready(self, wait: float | None) -> bool:
        """Whether a message (or the end of the pipe) is there to read, waiting up to ``wait`` seconds."""
        return bool(self._buffer) or bool(self._poll.poll(None if wait is None else wait * 1000))

    def receive(self) -> bytes:
        """The next message, waiting for it; EOFError when the writing end is closed."""
        while True:
            if len(self._buffer) >= LENGTH.size:
                end = LENGTH.size + LENGTH.unpack_from(self._buffer)[0]
                if len(self._buffer) >= end:
                    message = bytes(self._buffer[LENGTH.size:end])
                    del self._buffer[:end]
                    return message
            else:
                end = LENGTH.size
            chunk = os.read(self.fd, max(end - len(self._buffer), 1 << 16))
            if not chunk:
                raise EOFError("the pipe was closed")
            self._buffer += chunk
