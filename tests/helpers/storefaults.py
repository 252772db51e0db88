"""A full disk on demand: `FullDisk` replaces the store's local write seam (`ManifestStore.local_files`) and fails
one chosen call with ENOSPC, as the OS would. A failed `write` leaves what a real full disk leaves: the file
created and only part of the data in it.

Run as a program it is `python -m nemotron` with the fault installed (for end-to-end runs in a subprocess):

    FAULT_AT=N     fail the N-th write call (0-based) of the whole process
    FAULT_MATCH=S  count only calls whose path contains S (default: every call)
    FAULT_LOG=F    write every call seen, as JSON lines {"op", "path"}, to F (to learn N)
"""

from __future__ import annotations

import errno
import json
import os
import sys

from nemotron.store.manifest_store import LocalFiles, ManifestStore


class FullDisk(LocalFiles):
    def __init__(self, fail_at: int | None = None, match: str = "", log: str | None = None) -> None:
        self.fail_at, self.match, self.log = fail_at, match, log
        self.calls: list[tuple[str, str]] = []
        self.failed: tuple[str, str] | None = None

    def _step(self, op: str, path: str) -> bool:
        """Record the call; True if it is the one that fails."""
        if self.match and self.match not in path:
            return False
        index = len(self.calls)
        self.calls.append((op, path))
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps({"op": op, "path": path}) + "\n")
        if index == self.fail_at:
            self.failed = (op, path)
            return True
        return False

    @staticmethod
    def _enospc(path: str) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def makedirs(self, path: str) -> None:
        if self._step("makedirs", path) and not os.path.isdir(path):
            raise self._enospc(path)
        super().makedirs(path)

    def write(self, path: str, data: bytes, sync: bool = False) -> None:
        if self._step("write", path):
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            raise self._enospc(path)
        super().write(path, data, sync)

    def link(self, source: str, target: str) -> None:
        if self._step("link", target):
            raise self._enospc(target)
        super().link(source, target)

    def replace(self, source: str, target: str) -> None:
        if self._step("replace", target):
            raise self._enospc(target)
        super().replace(source, target)


def install(fail_at: int | None, match: str = "", log: str | None = None) -> FullDisk:
    disk = FullDisk(fail_at, match, log)
    ManifestStore.local_files = disk
    return disk


if __name__ == "__main__":
    at = os.environ.get("FAULT_AT")
    install(int(at) if at else None, os.environ.get("FAULT_MATCH", ""), os.environ.get("FAULT_LOG"))
    from nemotron.cli import main

    sys.argv = ["nemotron", *sys.argv[1:]]
    main()
