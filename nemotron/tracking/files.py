"""The file list of an artifact's data: relative path, size and an xxh3-128 content digest per file."""

from __future__ import annotations

from nemotron.tracking.records import FileEntry

DIGEST_ALGORITHM = "xxh3_128"
_CHUNK = 8 << 20


def file_digest(fs, path: str) -> str:
    import xxhash

    digest = xxhash.xxh3_128()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"{DIGEST_ALGORITHM}:{digest.hexdigest()}"


def scan_files(url: str, with_digests: bool = True) -> list[FileEntry]:
    """Every file under `url` (a file or a directory, any fsspec URL); [] if nothing is there."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        return []
    if fs.isfile(root):
        name = root.rsplit("/", 1)[-1]
        return [_entry(fs, root, name, fs.size(root), with_digests)]
    entries = []
    for path, info in sorted(fs.find(root, detail=True).items()):
        relative = path[len(root.rstrip("/")) + 1 :]
        entries.append(_entry(fs, path, relative, info.get("size") or 0, with_digests))
    return entries


def _entry(fs, path: str, relative: str, size: int, with_digests: bool) -> FileEntry:
    return FileEntry(path=relative, size=size, digest=file_digest(fs, path) if with_digests else None)
