"""Where artifacts' content lives outside the database: a local folder, or a folder of any filesystem fsspec reaches
by URL (``s3://bucket/prefix`` with s3fs installed, ``gs://``, ``memory://``, ...), so that every machine sees the
same blobs. Each blob is ``<home>/<project id>/ab/cdef...`` (its sha256 split after two digits).

A local blob is written whole or not at all (temp file + fsync + rename); a blob by URL in one upload (an object
store shows an object whole once its upload completes). An artifact keeps its blob's location (a path, or a URL),
so a store set to put blobs elsewhere still reads it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from ..errors import InvalidInputError, StoreUnavailableError

FILE = "file"  # an artifact's storage: a blob in a local folder (its location: the path)
URL = "url"  # a blob in a folder fsspec reaches (its location: the URL)


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` and the path on it."""
    import fsspec.core  # here, not at the top: a store whose blobs are local or in the database never loads it

    return fsspec.core.url_to_fs(url)


class Folder:
    """A local (or mounted) folder."""

    storage = FILE

    def __init__(self, path: Path) -> None:
        self.path = path

    def location(self, project_id: str, digest: str) -> str:
        return str(self.path / project_id / digest[:2] / digest[2:])

    def spool_folder(self, project_id: str) -> Path:
        """Where a put spools its content: beside the blobs, so that placing it is a rename."""
        return self.path / project_id / "tmp"

    def __str__(self) -> str:
        return str(self.path)


class UrlFolder:
    """A folder on a filesystem fsspec reaches by URL."""

    storage = URL

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def location(self, project_id: str, digest: str) -> str:
        return f"{self.url}/{project_id}/{digest[:2]}/{digest[2:]}"

    def spool_folder(self, project_id: str) -> None:
        return None  # the system's temp folder: the upload reads the spool from there

    def __str__(self) -> str:
        return self.url


def blob_home(setting: str | os.PathLike, what: str) -> Folder | UrlFolder:
    """The folder a setting names: a path, a ``file://`` URL, or a URL of a filesystem fsspec has (its package
    installed: ``s3://`` needs s3fs); else InvalidInputError, saying so for ``what`` (the setting's name)."""
    if isinstance(setting, os.PathLike) or "://" not in setting:
        return Folder(Path(setting).absolute())
    scheme = urlparse(setting).scheme
    if scheme == "file":
        parsed = urlparse(setting)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInputError(f"{what}: a file:// URL names a local or mounted folder (file:///path), got "
                                    f"{setting!r}")
        return Folder(Path(unquote(parsed.path)).absolute())
    import fsspec

    if not setting.partition("://")[2].strip("/"):
        raise InvalidInputError(f"{what}: a URL names a folder (s3://bucket/prefix), got {setting!r}")
    if scheme not in fsspec.available_protocols():
        raise InvalidInputError(f"{what}: {scheme}:// is no filesystem fsspec knows, in {setting!r}")
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        raise InvalidInputError(f"{what}: {scheme}:// needs a package that is not installed ({exc}); for s3:// "
                                "install rolloutdb[s3]") from None
    return UrlFolder(setting)


@contextlib.contextmanager
def writing_blobs(where: object) -> Iterator[None]:
    """An OSError writing into the blob folder ``where`` (read-only, full, a file in its place) as the store's
    outage, StoreUnavailableError: the folder is the store's, as its database is, not the caller's input."""
    try:
        yield
    except OSError as exc:
        raise StoreUnavailableError(f"cannot write artifacts to {where}: {exc.strerror or exc}") from exc


def place_blob(storage: str, location: str, spool: IO[bytes]) -> bool:
    """The spooled content (a named temp file, flushed) as the blob at ``location``, unless it is there already;
    whether it was moved there (a local blob takes the spool file itself)."""
    if storage == URL:
        filesystem, path = _filesystem(location)
        if not filesystem.exists(path):
            filesystem.put_file(spool.name, path)
        return False
    path = Path(location)
    if path.exists():
        return False
    with writing_blobs(path.parent.parent.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spool.name, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    return True


def open_blob(storage: str, location: str) -> IO[bytes]:
    """The blob's content, read as it is consumed; FileNotFoundError when it is not there."""
    if storage == URL:
        filesystem, path = _filesystem(location)
        return filesystem.open(path, "rb")
    return open(location, "rb")


def blob_exists(storage: str, location: str) -> bool:
    if storage == URL:
        filesystem, path = _filesystem(location)
        return filesystem.exists(path)
    return Path(location).exists()


def remove_blob(storage: str, location: str) -> None:
    """The blob gone (it may be gone already)."""
    if storage == URL:
        filesystem, path = _filesystem(location)
        try:
            filesystem.rm_file(path)
        except FileNotFoundError:
            pass
        return
    Path(location).unlink(missing_ok=True)


def blob_size(storage: str, location: str) -> int:
    """The blob's size in bytes; OSError (FileNotFoundError among them) when it cannot be told."""
    if storage == URL:
        filesystem, path = _filesystem(location)
        return filesystem.size(path)
    return os.stat(location).st_size
