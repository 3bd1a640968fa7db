"""The local storage backend: atomic writes, idempotent deletes, keys that stay inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediasvc.keys import variant_key
from mediasvc.storage import StorageError, StoredFile
from mediasvc.storage import local as local_module
from mediasvc.storage.local import LocalStorage


def test_variant_key_fans_out_by_id_prefix() -> None:
    """Keys are prefix/id/filename, nothing from the client."""
    assert variant_key("k3Jx9QmT2vLr8WcA5nYpZb", "full.webp") == (
        "k3/k3Jx9QmT2vLr8WcA5nYpZb/full.webp"
    )


async def test_put_writes_the_bytes_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """After put, the key holds exactly the source bytes and nothing else is in the folder."""
    source = tmp_path / "src"
    source.write_bytes(b"webp-bytes")
    storage = LocalStorage(tmp_path / "media")
    await storage.put("ab/abc/full.webp", source, "image/webp")
    folder = tmp_path / "media" / "ab" / "abc"
    assert (folder / "full.webp").read_bytes() == b"webp-bytes"
    assert [p.name for p in folder.iterdir()] == ["full.webp"]


async def test_put_replaces_atomically(tmp_path: Path) -> None:
    """A second put of the same key swaps the whole file."""
    storage = LocalStorage(tmp_path / "media")
    for content in (b"one", b"two-longer"):
        source = tmp_path / "src"
        source.write_bytes(content)
        await storage.put("ab/abc/full.webp", source, "image/webp")
    assert (tmp_path / "media/ab/abc/full.webp").read_bytes() == b"two-longer"


async def test_failed_put_is_a_storage_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A source that cannot be read fails cleanly without a temp file."""
    storage = LocalStorage(tmp_path / "media")
    with pytest.raises(StorageError):
        await storage.put("ab/abc/full.webp", tmp_path / "missing", "image/webp")
    assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []


async def test_delete_removes_files_and_empty_folder_and_ignores_missing(tmp_path: Path) -> None:
    """Deleting is idempotent and tidies the per-media folder."""
    source = tmp_path / "src"
    source.write_bytes(b"x")
    storage = LocalStorage(tmp_path / "media")
    await storage.put("ab/abc/full.webp", source, "image/webp")
    await storage.delete(["ab/abc/full.webp", "ab/abc/small.webp"])
    await storage.delete(["ab/abc/full.webp"])
    assert not (tmp_path / "media/ab/abc").exists()


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "ab/../../x", "/etc/passwd", "ab//x", "ab/./x", "ab/x\0y"]
)
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    """A key that could name a file outside the root is refused before any file operation."""
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(tmp_path / "media").path_of(key)


def test_keys_map_below_the_root(tmp_path: Path) -> None:
    """A key and a prefix (trailing slash) name the file and the directory below the root."""
    storage = LocalStorage(tmp_path / "media")
    assert storage.path_of("ab/abc/full.webp") == storage.root / "ab" / "abc" / "full.webp"
    assert storage.path_of("ab/abc/") == storage.root / "ab" / "abc"


async def test_check_fails_when_the_root_is_not_writable(tmp_path: Path) -> None:
    """Readiness notices a media directory that cannot be created or written."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError):
        await LocalStorage(blocker / "media").check()


async def test_put_moves_the_scratch_file_on_the_same_disk(tmp_path: Path) -> None:
    """The worker's output becomes the variant by rename: no copy is left behind."""
    source = tmp_path / "scratch"
    source.write_bytes(b"webp-bytes")
    inode = source.stat().st_ino
    storage = LocalStorage(tmp_path / "media")
    await storage.put("ab/abc/full.webp", source, "image/webp")
    stored = tmp_path / "media/ab/abc/full.webp"
    assert stored.stat().st_ino == inode
    assert not source.exists()


async def test_a_put_survives_a_delete_removing_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two session objects share `uploads/`: deleting one removes the directory once it is
    empty, which can happen between another put's mkdir and its rename. Forced here: the
    first rename finds its directory just removed; the put makes it again and lands."""
    storage = LocalStorage(tmp_path / "media")
    await storage.put("uploads/first", _scratch(tmp_path, b"first"), "image/jpeg")
    real_replace = os.replace
    removed = []

    def replace_after_a_delete(source: Path, dest: Path) -> None:
        if not removed:
            removed.append(dest)
            real_replace(storage.path_of("uploads/first"), tmp_path / "taken")
            Path(dest).parent.rmdir()  # as `_remove_all` does once `uploads/` is empty
        real_replace(source, dest)

    monkeypatch.setattr(local_module.os, "replace", replace_after_a_delete)
    await storage.put("uploads/second", _scratch(tmp_path, b"second"), "image/jpeg")
    assert removed
    assert storage.path_of("uploads/second").read_bytes() == b"second"


async def test_put_all_writes_a_media_s_files_and_syncs_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A media's files in one go: each holds its bytes, and each directory they were named
    in is synced once, after the last of its files has its name (one sync per file cost
    the app about 1 ms per upload)."""
    storage = LocalStorage(tmp_path / "media")
    names = ["full.avif", "full.webp", "small.webp", "thumbnail.webp"]
    content = {f"ab/abc/{name}": name.encode() for name in names} | {"originals/ab/abc": b"src"}
    files = [
        StoredFile(key, _scratch(tmp_path, data), "image/webp") for key, data in content.items()
    ]
    synced: list[tuple[Path, list[str]]] = []
    real_sync = local_module._fsync_dir

    def sync(directory: Path) -> None:
        synced.append((directory, sorted(p.name for p in directory.iterdir())))
        real_sync(directory)

    monkeypatch.setattr(local_module, "_fsync_dir", sync)
    await storage.put_all(files)
    assert {key: storage.path_of(key).read_bytes() for key in content} == content
    assert synced == [
        (storage.path_of("ab/abc/full.webp").parent, names),
        (storage.path_of("originals/ab/abc").parent, ["abc"]),
    ]


async def test_put_all_failing_part_way_says_how_many_it_stored(tmp_path: Path) -> None:
    """The third file cannot be named (a file stands where its directory would go): a
    `StorageError` whose `stored` counts the two files that have their names, which stay
    for the caller's undo; the rest are not written."""
    storage = LocalStorage(tmp_path / "media")
    files = [
        StoredFile("ab/abc/one.webp", _scratch(tmp_path, b"one"), "image/webp"),
        StoredFile("ab/abc/two.webp", _scratch(tmp_path, b"two"), "image/webp"),
        StoredFile("ab/abc/taken/three.webp", _scratch(tmp_path, b"three"), "image/webp"),
        StoredFile("ab/abc/four.webp", _scratch(tmp_path, b"four"), "image/webp"),
    ]
    (tmp_path / "media/ab/abc").mkdir(parents=True)
    (tmp_path / "media/ab/abc/taken").write_bytes(b"")
    with pytest.raises(StorageError) as failed:
        await storage.put_all(files)
    assert failed.value.stored == 2
    assert sorted(p.name for p in (tmp_path / "media/ab/abc").iterdir()) == [
        "one.webp",
        "taken",
        "two.webp",
    ]


async def test_put_all_with_a_source_missing_stores_none(tmp_path: Path) -> None:
    """Every file's bytes are made durable before any gets its name: one that cannot be
    read fails the set before anything is stored."""
    storage = LocalStorage(tmp_path / "media")
    files = [
        StoredFile("ab/abc/one.webp", _scratch(tmp_path, b"one"), "image/webp"),
        StoredFile("ab/abc/two.webp", tmp_path / "missing", "image/webp"),
    ]
    with pytest.raises(StorageError) as failed:
        await storage.put_all(files)
    assert failed.value.stored == 0
    assert not (tmp_path / "media").exists()


def _scratch(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"scratch-{data.decode()}"
    path.write_bytes(data)
    return path
