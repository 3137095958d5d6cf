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


def pipe() -> tuple[int, int]:
    """A pipe (read end, write end) that holds ``PIPE_BYTES`` where the system allows."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # a system limit below it: the default size works, in more writes
        pass
    return read_end, write_end


def send(fd: int, message: bytes) -> None:
    """Write one message (BrokenPipeError when the reader is gone)."""
    length = LENGTH.pack(len(message))
    written = os.writev(fd, [length, message])
    if written < len(length) + len(message):  # the pipe was full: the rest as the reader makes room
        rest = memoryview(length + message)[written:]
        while rest:
            rest = rest[os.write(fd, rest):]


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
