"""Where evidence bytes live: a key/value interface a local folder and an S3 bucket can share.

Keys are '/'-separated relative paths (``2026-10/<dag>/<run>/<task>/<file>``). The interface
speaks only in keys and bytes, never in ``Path`` objects, so the S3 store (later) can implement
it with PUT/GET/LIST and the evidence code above it stays unchanged.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from custos.errors import EvidenceError

CHUNK_SIZE = 1024 * 1024
"""Bytes per chunk when streaming a stored object (hashing never loads a whole file)."""

_TMP_DIR = ".custos-tmp"
"""Local store only: in-flight writes live here, outside every run, so a crash mid-write
never leaves a half-written file inside a run folder."""


def validate_key(key: str, what: str = "evidence key") -> str:
    """Return ``key`` if it is a safe relative key, else raise EvidenceError.

    Why strict: keys become file paths locally and object names in S3; a '..' or an absolute
    path would let a task write outside the evidence root, and a backslash or empty segment
    would make the same key mean different things on different platforms.
    """
    if not isinstance(key, str) or not key:
        raise EvidenceError(f"{what} {key!r} is invalid: it must be a non-empty string")
    _check_segments(key, key.split("/"), what=what)
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key` but '' and a trailing '/' are allowed (S3-style prefix)."""
    if not isinstance(prefix, str):
        raise EvidenceError(f"evidence prefix {prefix!r} is invalid: it must be a string")
    if prefix:
        body = prefix.removesuffix("/")
        _check_segments(prefix, body.split("/"), what="evidence prefix")
    return prefix


def _check_segments(raw: str, segments: list[str], *, what: str) -> None:
    if segments[0] == _TMP_DIR:
        raise EvidenceError(f"{what} {raw!r} is invalid: {_TMP_DIR!r} is reserved")
    if raw.startswith("/"):
        raise EvidenceError(f"{what} {raw!r} is invalid: it must be relative, not absolute")
    if "\\" in raw:
        raise EvidenceError(f"{what} {raw!r} is invalid: use '/' as separator, not '\\'")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in raw):
        raise EvidenceError(f"{what} {raw!r} is invalid: control characters are not allowed")
    for segment in segments:
        if segment == "":
            raise EvidenceError(f"{what} {raw!r} is invalid: it has an empty path segment")
        if segment in (".", ".."):
            raise EvidenceError(f"{what} {raw!r} is invalid: '.' and '..' segments are not allowed")


class EvidenceStore(ABC):
    """A flat namespace of immutable-by-convention objects addressed by relative keys."""

    url: str

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` atomically: readers see the old object or the new one."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the whole object; EvidenceError if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix`` (plain string prefix, as S3), sorted."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes of the object at ``key``; EvidenceError if it does not exist."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the object in chunks so large files are hashed with flat memory."""

    def iter_objects(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size)`` sorted by key.

        The default asks for each size separately; stores whose listing already carries sizes
        (S3 ListObjectsV2) should override this to avoid one request per object.
        """
        for key in self.list_keys(prefix):
            yield key, self.size(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalFolderEvidenceStore(EvidenceStore):
    """Evidence in a local directory (the embedded default). The root is created on first write."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Belt and braces: validation already rules out escapes, this guards future edits.
        if self.root not in path.parents:
            raise EvidenceError(f"evidence key {key!r} resolves outside the store root")
        return path

    def _missing(self, key: str) -> EvidenceError:
        return EvidenceError(f"evidence item {key!r} does not exist in {self.url}")

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise EvidenceError(f"evidence item {key!r}: data must be bytes")
        tmp_dir = self.root / _TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise EvidenceError(
                f"cannot write evidence item {key!r}: a parent folder of it is already a file"
            ) from None
        if target.is_dir():
            raise EvidenceError(f"cannot write evidence item {key!r}: it is already a folder")
        tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
        # 0o644 (minus umask): the auditors' Evidence page may run as another user.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path.stat().st_size

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        for key, _ in self.iter_objects(prefix):
            yield key

    def iter_objects(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix names, then filter by string prefix.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root.joinpath(*base_rel.split("/")) if base_rel else self.root
        found: list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root and _TMP_DIR in dirnames:
                dirnames.remove(_TMP_DIR)
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    found.append((key, (Path(dirpath) / name).stat().st_size))
        found.sort()
        yield from found


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); harmless no-op where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_evidence_store(url: str) -> EvidenceStore:
    """Open the store named by ``CUSTOS_EVIDENCE_URL``: ``file:///abs/path`` or a plain path.

    ``s3://bucket/prefix`` is part of the design but not built yet; it fails loudly rather than
    silently writing evidence somewhere else.
    """
    if not isinstance(url, str) or not url.strip():
        raise EvidenceError("evidence store URL is empty: use file:///abs/path or a directory path")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return LocalFolderEvidenceStore(_file_url_path(url))
    if scheme == "s3":
        raise EvidenceError(
            f"evidence store URL {url!r}: the S3 evidence store comes later; "
            "use file:///abs/path or a directory path for now"
        )
    if "://" in url:
        raise EvidenceError(
            f"evidence store URL {url!r} has unsupported scheme {parts.scheme!r}; "
            "use file:///abs/path or a directory path"
        )
    return LocalFolderEvidenceStore(url)


def _file_url_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise EvidenceError(
            f"evidence store URL {url!r} names host {parts.netloc!r}; a file URL must be "
            "file:///abs/path (three slashes, absolute path)"
        )
    if parts.query or parts.fragment:
        raise EvidenceError(f"evidence store URL {url!r}: a file URL takes no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise EvidenceError(f"evidence store URL {url!r}: the path must be absolute")
    return path
