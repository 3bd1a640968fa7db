"""Local-disk backend: files under one root, served by nginx straight from disk."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from mediasvc.storage import (
    DirectUpload,
    DirectUploadTerms,
    ObjectMissing,
    StorageError,
    StoredFile,
    StoredObject,
)

# Reads go through a thread per chunk: large chunks keep the hops few.
_READ_CHUNK = 1024 * 1024
# Tries at giving a file its name while deletes remove the directory it goes in.
_PLACE_ATTEMPTS = 5
# A media's files are fsynced side by side, so that the journal commits them together: one
# after another, they took the store stage from 3.8 to 5.7 ms an upload.
_FSYNC_THREADS = 8


class LocalStorage:
    """Variant files under `root`, each made durable (fsync) and then renamed into place."""

    def __init__(self, root: Path) -> None:
        # Resolved once, when storage opens: every write and delete checks keys against it.
        self.root = root.resolve()
        self._fsyncs = ThreadPoolExecutor(_FSYNC_THREADS, thread_name_prefix="mediasvc-fsync")

    def close(self) -> None:
        """Let the fsync threads go once they are idle (`storage.open`)."""
        self._fsyncs.shutdown(wait=False)

    def path_of(self, key: str) -> Path:
        """The file a key maps to; keys are ours, but refuse anything that escapes `root`.

        Told from the key's segments, not by resolving the path: resolving asked the file
        system once per directory level, 35 `lstat`s an upload on the event loop. Only the
        operator can put a link inside `root`.
        """
        segments = key.removesuffix("/").split("/")
        if "\0" in key or any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(f"storage key escapes the root: {key!r}")
        return self.root.joinpath(*segments)

    async def put(self, key: str, source: Path, content_type: str) -> None:
        await self.put_all([StoredFile(key, source, content_type)])

    async def put_all(self, files: Sequence[StoredFile]) -> None:
        # One hop from the loop for them all, and one fsync per directory rather than per
        # file: each file in a thread of its own, syncing the directory after its rename,
        # cost the app about 1 ms more CPU per upload (docs/decisions.md).
        placed = [(file.path, self.path_of(file.key)) for file in files]
        progress = _Progress()
        try:
            await asyncio.to_thread(_write_all_atomic, placed, progress, self._fsyncs)
        except OSError as exc:
            raise StorageError(
                f"cannot write {len(files) - progress.placed} of {len(files)} files "
                f"({files[0].key}, ...): {exc}",
                stored=progress.placed,
            ) from exc

    async def delete(self, keys: Iterable[str]) -> None:
        paths = [self.path_of(key) for key in keys]
        try:
            await asyncio.to_thread(_remove_all, paths)
        except OSError as exc:
            raise StorageError(f"cannot delete: {exc.strerror}") from exc

    async def delete_under(self, prefix: str) -> list[str]:
        directory = self.path_of(prefix)
        files = _files_in(directory)
        try:
            await asyncio.to_thread(_remove_all, files)
        except OSError as exc:
            raise StorageError(f"cannot delete: {exc.strerror}") from exc
        return [prefix + path.name for path in files]

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self.path_of(key).open, "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, _READ_CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    # The app receives a session's PUT itself, and caps it as it streams.
    put_needs_size = False

    async def direct_upload(self, key: str, terms: DirectUploadTerms) -> DirectUpload | None:
        # Files on this disk: the app receives the bytes itself, through a signed URL.
        return None

    async def scan(self) -> AsyncIterator[StoredObject]:
        files = await asyncio.to_thread(_files_under, self.root)
        for key, modified, size in files:
            yield StoredObject(key, modified, size)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(_check_writable, self.root)
        except OSError as exc:
            raise StorageError(f"media directory not writable: {exc.strerror}") from exc


class _Progress:
    """How many of `_write_all_atomic`'s files have their final name so far."""

    placed = 0


def _write_all_atomic(
    files: list[tuple[Path, Path]], progress: _Progress, fsyncs: Executor
) -> None:
    # Each source is the worker's complete output and the caller's scratch copy: its bytes
    # are made durable before it gets its final name (no copy when spool and media share a
    # disk), and the names once each directory they were given in is synced.
    for _ in fsyncs.map(_fsync_file, [source for source, _ in files]):
        pass
    directories: dict[Path, None] = {}
    for source, dest in files:
        _place_in_directory(source, dest)
        progress.placed += 1
        directories[dest.parent] = None
    for directory in directories:
        _fsync_dir(directory)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as opened:
        os.fsync(opened.fileno())


def _place_in_directory(source: Path, dest: Path) -> None:
    for attempt in range(1, _PLACE_ATTEMPTS + 1):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            _place(source, dest)
            return
        except FileNotFoundError:
            # A delete removes a directory it leaves empty (`_remove_all`); one in the same
            # directory (another session's object under `uploads/`) may have run between the
            # mkdir and the rename. Make the directory again.
            if attempt == _PLACE_ATTEMPTS or not source.exists():
                raise


def _place(source: Path, dest: Path) -> None:
    try:
        os.replace(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_atomic(source, dest)  # the spool is on another filesystem


def _copy_atomic(source: Path, dest: Path) -> None:
    # Dot-prefixed so nginx never serves a half-written file; random so writers never clash.
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.tmp")
    try:
        with source.open("rb") as src, tmp.open("xb") as out:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_all(paths: list[Path]) -> None:
    parents = set()
    for path in paths:
        path.unlink(missing_ok=True)
        parents.add(path.parent)
    for parent in parents:
        # The per-media directory goes once it is empty; a non-empty one is left alone.
        with contextlib.suppress(OSError):
            parent.rmdir()


def _files_in(directory: Path) -> list[Path]:
    try:
        return [entry for entry in directory.iterdir() if not entry.is_dir()]
    except FileNotFoundError:
        return []


def _files_under(root: Path) -> list[tuple[str, datetime, int]]:
    # os.walk skips directories that vanish mid-walk (a delete, another reaper) instead of
    # failing, and a file gone before its stat is simply not there any more.
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            found.append((str(path.relative_to(root)), modified, stat.st_size))
    return found


def _check_writable(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    probe = root / f".readyz.{secrets.token_hex(4)}"
    probe.write_bytes(b"")
    probe.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
