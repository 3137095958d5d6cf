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
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` UUIDv7 strings in increasing order: ``new_id()`` for a batch, taking the clock and the
    lock once."""
    global _last_ms, _counter
    ids = []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = _random.getrandbits(10) - 1  # the first id below takes the next value
        for _ in range(count):
            # Same millisecond as the last id: bump the 12-bit counter so ids keep increasing.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            value = ((_last_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _counter << 64 | 0b10 << 62
                     | _random.getrandbits(62))
            digits = f"{value:032x}"  # formatted by hand: building a uuid.UUID costs more than the rest
            ids.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return ids
