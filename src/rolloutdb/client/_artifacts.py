"""``store.artifacts`` through a server: what the route table cannot make — content streamed up (``put``) and down
(``open``) — and the calls that name an artifact taking its record as well as its sha256, as locally."""

from __future__ import annotations

import functools
import inspect
import io
import os
from typing import IO, Any
from urllib.parse import quote

from ..records import Artifact
from ..server import CONTENT_PATH, UPLOAD_PATH
from ..store.base import mappings
from ..store.artifacts import (CHUNK_BYTES, DEFAULT_QUALITY, Artifacts, ChunkReader, artifact_digest,
                               check_compression, check_media_type, check_reencoding, content_chunks, content_source)


def put(self, data: bytes | str | os.PathLike | IO[bytes], media_type: str = "application/octet-stream", *,
        role: str = "attachment", turn_id: str | None = None, step_id: str | None = None,
        rollout_id: str | None = None, compression: str | None = None, reencode: str | None = None,
        quality: int = DEFAULT_QUALITY) -> Artifact:
    remote = self._remote
    check_media_type(media_type)  # a query string would make text of what is none
    check_compression(compression)
    check_reencoding(reencode, quality, compression)
    params = [(name, value) for name, value in (("media_type", media_type), ("role", role), ("turn_id", turn_id),
                                                ("step_id", step_id), ("rollout_id", rollout_id),
                                                ("compression", compression), ("reencode", reencode))
              if value is not None]
    if reencode is not None:
        params.append(("quality", str(quality)))
    with content_source(data) as source:
        # Held to the server's limit here too: more is refused before it is sent, as the store refuses it.
        answer = remote.transport.request("POST", UPLOAD_PATH, params=params, repeatable=False,
                                          content=content_chunks(source, remote.max_artifact_bytes))
    return Artifact.model_validate_json(answer)


def open(self, artifact: Artifact | str) -> IO[bytes]:
    response = self._remote.transport.download(CONTENT_PATH.format(sha256=quote(artifact_digest(artifact), safe="")))
    return io.BufferedReader(_Download(response), CHUNK_BYTES)


class _Download(ChunkReader):
    """An artifact's content as the server streams it; closing it closes the answer."""

    def __init__(self, response) -> None:
        pieces = response.iter_bytes(CHUNK_BYTES)
        super().__init__(lambda seq: next(pieces, None))
        self._response = response

    def close(self) -> None:
        self._response.close()
        super().close()


def naming_by_digest(method):
    """``method``, its first argument (an artifact's record or sha256) checked and sent as the sha256."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def named(self, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        first = list(signature.parameters)[1]
        bound.arguments[first] = artifact_digest(bound.arguments[first])
        return method(*bound.args, **bound.kwargs)

    return named


def links_by_digest(method):
    """``link_many``, refusing what is not a list of links as the store does, each link's artifact record sent as its
    sha256 (the rest of each link is the server's to check)."""
    @functools.wraps(method)
    def named(self, links: Any) -> Any:
        return method(self, [{**link, "artifact": link["artifact"].sha256}
                             if isinstance(link.get("artifact"), Artifact) else link
                             for link in mappings("link", links)])

    return named


def artifact_methods(generated: dict[str, Any]) -> dict[str, Any]:
    """The remote artifacts' methods: those of the route table (``generated``) and the streams."""
    methods = {name: naming_by_digest(generated[name]) for name in ("get", "exists", "link")}
    methods["link_many"] = links_by_digest(generated["link_many"])
    methods.update({"put": functools.wraps(Artifacts.put)(put), "open": functools.wraps(Artifacts.open)(open)})
    return methods
