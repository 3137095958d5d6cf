"""Artifacts' content over HTTP, as streams both ways (the other artifact routes are in the route table).

``POST /artifacts?media_type=...`` takes the raw content as the body, handed to ``store.artifacts.put`` a piece at a
time as it arrives: the server's body limit does not apply to it, the store's artifact limit does
(``max_artifact_bytes``). ``GET /artifacts/SHA256/content`` streams it back (a re-encoded image in its stored form)
with its stored media type, but never
for a browser to run: an attachment unless an image type safe to show, ``nosniff``, and a sandbox."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import AsyncIterator

import anyio.from_thread
import anyio.to_thread
from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from ..errors import InvalidInputError
from ..records import Artifact
from ..store.artifacts import CHUNK_BYTES, DEFAULT_QUALITY
from ._projects import ProjectStores

UPLOAD_PATH = "/artifacts"
CONTENT_PATH = "/artifacts/{sha256}/content"
# Shown inline: raster images, which browsers do not run (SVG is left out: it may hold scripts).
INLINE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})
# A media type sent back as its Content-Type: type/subtype alone; anything else is sent as octet-stream.
PLAIN_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


class _RequestBody(io.RawIOBase):
    """The request's body as a file object for a worker thread: each read waits for the next piece on the event
    loop, so no more than a piece is held at a time."""

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces, self._buffer = pieces, b""

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        try:
            async for piece in self._pieces:
                if piece:
                    return piece
        except ClientDisconnect:  # the store drops what it spooled; nobody is left to answer
            raise InvalidInputError("the upload broke off before the end of its content") from None
        return b""

    def readinto(self, target) -> int:
        if not self._buffer:
            self._buffer = anyio.from_thread.run(self._next)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def upload(stores: ProjectStores):
    async def put(request: Request, media_type: str = Query("application/octet-stream"),
                  role: str = Query("attachment"), turn_id: str | None = None, step_id: str | None = None,
                  rollout_id: str | None = None,
                  compression: str | None = Query(None, description="zstd: store it compressed"),
                  reencode: str | None = Query(None, description="webp: store an image as WebP when smaller"),
                  quality: int = Query(DEFAULT_QUALITY, description="the WebP quality (0-100)")) -> Artifact:
        body = _RequestBody(request.stream())

        def store_it() -> Artifact:
            with stores.store(request, "writer") as store:
                return store.artifacts.put(body, media_type, role=role, turn_id=turn_id, step_id=step_id,
                                           rollout_id=rollout_id, compression=compression, reencode=reencode,
                                           quality=quality)

        return await anyio.to_thread.run_sync(store_it)

    return put


def download(stores: ProjectStores):
    def content(request: Request, sha256: str) -> StreamingResponse:
        held = contextlib.ExitStack()  # the store and the file stay open while the answer streams
        try:
            store = held.enter_context(stores.store(request, "reader"))
            artifact = store.artifacts.get(sha256)
            file = held.enter_context(store.artifacts.open(artifact))
        except BaseException:
            held.close()
            raise

        def pieces():
            with held:
                while piece := file.read(CHUNK_BYTES):
                    yield piece

        return StreamingResponse(pieces(), media_type=served_media_type(artifact.media_type),
                                 headers=content_headers(artifact))

    return content


def served_media_type(media_type: str) -> str:
    return media_type if PLAIN_MEDIA_TYPE.fullmatch(media_type) else "application/octet-stream"


def content_headers(artifact: Artifact) -> dict[str, str]:
    inline = artifact.media_type.lower() in INLINE_MEDIA_TYPES
    return {"Content-Disposition": "inline" if inline else f'attachment; filename="{artifact.sha256}"',
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Length": str(artifact.content_size)}
