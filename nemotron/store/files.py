"""The file list of an artifact's data: relative path, size and an xxh3-128 content digest per file."""

from __future__ import annotations

from nemotron.store.records import FileEntry

DIGEST_ALGORITHM = "xxh3_128"
_CHUNK = 8 << 20  # remote filesystems: few, large requests
_LOCAL_CHUNK = 1 << 20  # local files: one reused buffer that stays in the CPU cache (4x faster than 8 MiB reads)


def file_digest(fs, path: str) -> str:
    return digest_file(fs, path, DIGEST_ALGORITHM)


def digest_file(fs, path: str, algorithm: str = DIGEST_ALGORITHM) -> str:
    """`algorithm:<hex>` of one file: xxh3_128 (the default), sha256 or md5."""
    hasher = new_hasher(algorithm)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & {"file", "local"}:
        buffer = bytearray(_LOCAL_CHUNK)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            while count := f.readinto(buffer):
                hasher.update(view[:count])
    else:
        with fs.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def new_hasher(algorithm: str):
    if algorithm == "xxh3_128":
        import xxhash

        return xxhash.xxh3_128()
    if algorithm in ("sha256", "md5"):
        import hashlib

        return hashlib.new(algorithm)
    from nemotron.errors import NemotronError

    raise NemotronError(f"Unknown digest algorithm {algorithm!r} (known: xxh3_128, sha256, md5).")


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
