"""Client-generatable ids: UUIDv7 strings, time-ordered so that ids sort by creation."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_prefix = ""  # the text of _last_ms and the version digit, made once per millisecond rather than once per id
# Random bits from a generator seeded by the OS, not a system call per id (ids sit on hot paths);
# reseeded in forked children so that two processes never share a sequence.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def _advance(now_ms: int) -> tuple[str, int]:
    """The next id's time prefix and 12-bit counter at ``now_ms``; the caller holds the lock."""
    global _last_ms, _counter, _prefix
    if now_ms > _last_ms:
        _last_ms, _counter = now_ms, _random.getrandbits(10)
    else:  # the same millisecond as the last id: bump the counter so ids keep increasing
        _counter += 1
        if _counter <= 0xFFF:
            return _prefix, _counter
        _last_ms, _counter = _last_ms + 1, 0
    _prefix = f"{_last_ms >> 16 & 0xFFFFFFFF:08x}-{_last_ms & 0xFFFF:04x}-7"
    return _prefix, _counter


def _text(prefix: str, counter: int) -> str:
    # Formatted by hand, the 80 bits after the time as bytes' hex: a uuid.UUID, or one 128-bit number's hex,
    # costs more than the rest of the id.
    digits = (counter << 64 | 0b10 << 62 | _random.getrandbits(62)).to_bytes(10, "big").hex()
    return f"{prefix}{digits[1:4]}-{digits[4:8]}-{digits[8:]}"


def new_id() -> str:
    """A UUIDv7 (RFC 9562) string; monotonic within the process, unique across machines."""
    with _lock:
        prefix, counter = _advance(time.time_ns() // 1_000_000)
    return _text(prefix, counter)


def new_ids(count: int) -> list[str]:
    """``count`` UUIDv7 strings in increasing order: ``new_id()`` for a batch, taking the clock and the
    lock once."""
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        return [_text(*_advance(now_ms)) for _ in range(count)]
