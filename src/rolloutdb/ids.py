"""Client-generatable ids: UUIDv7 strings, time-ordered so that ids sort by creation."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bits from a generator seeded by the OS, not a system call per id (ids sit on hot paths);
# reseeded in forked children so that two processes never share a sequence.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_id() -> str:
    """A UUIDv7 (RFC 9562) string; monotonic within the process, unique across machines."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            # Same (or an earlier) millisecond: bump the 12-bit counter so ids keep increasing.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = _random.getrandbits(10)
        counter = _counter
        tail = _random.getrandbits(62)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail
    digits = f"{value:032x}"  # formatted by hand: building a uuid.UUID costs more than the rest
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
