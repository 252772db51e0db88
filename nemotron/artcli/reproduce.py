"""What a reproduction may differ in, and whether it kept its promise (`nemotron-art rerun` and `diff`).

Two runs of the same job differ by construction in: when (created/committed times, elapsed seconds,
throughput), where (host, user, working and output directories) and which run (Hydra/Slurm job ids,
producer). Anything else that differs (config, inputs, code version, typed fields, file contents) is a real
difference. Two things look different without being so:

- paths inside the job's own output directory (`metadata.history` names the metrics file): equal once the old
  output directory is replaced by the new one ("relocated"). Files never name it: `blend.json`'s prefixes are
  relative to the file, so a data stage's rerun gives byte-identical files;
- the job's own other outputs (`pretrain_data` commits a tokenizer, then data naming it): the new data names the
  new tokenizer, which reproduces the old one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from nemotron.errors import NemotronError
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

# Fields that measure time or speed: they differ between any two runs.
_TIMING = re.compile(r"(^|\.)(created_at|committed_at|elapsed_sec|\w*_seconds|\w*_sec|\w*_per_s)$")
_RUN_IDS = ("host", "user", "cwd", "output_dir", "hydra_job_id", "slurm_job_id")
# Loss history: on CPU in one process torch gives the same floats run after run (checked by the tests); this is
# the tolerance promised elsewhere (GPU kernels, several processes), relative.
LOSS_RTOL = 1e-5
_HISTORY_KEYS = ("loss", "val_loss")


def is_timing(key: str) -> bool:
    return bool(_TIMING.search(key))


def output_dir_of(manifest: Manifest) -> str | None:
    return manifest.run.output_dir if manifest.run and manifest.run.output_dir else None


def relocated(value_a: Any, value_b: Any, a: Manifest, b: Manifest) -> bool:
    """True when two strings are equal once a's run output directory is replaced by b's (a path the job wrote
    under its own output directory; a registered path elsewhere that changed is a real difference)."""
    if not (isinstance(value_a, str) and isinstance(value_b, str)):
        return False
    old, new = output_dir_of(a), output_dir_of(b)
    return bool(old and new and old in value_a and value_a.replace(old, new) == value_b)


def reproduced_by(store: ManifestStore | None, ref_a: str, ref_b: str) -> bool:
    """True when version `ref_b` records that it reproduces `ref_a` (the job's own other outputs)."""
    if store is None or ref_a == ref_b:
        return ref_a == ref_b
    try:
        return store.resolve(ref_b).reproduces == ref_a
    except NemotronError:  # a missing or damaged version does not count as reproduced
        return False


def siblings(store: ManifestStore, manifest: Manifest) -> list[Manifest]:
    """Every version the job that committed `manifest` committed (same run output dir), `manifest` included."""
    where = output_dir_of(manifest)
    if where is None:
        return [manifest]
    found = [m for m in store.all_manifests() if output_dir_of(m) == where]
    return sorted(found, key=lambda m: m.committed_at) or [manifest]


def loss_history(manifest: Manifest) -> list[tuple[int, str, float]] | None:
    """(step, key, value) of every loss the run logged, from the metrics file its version names; None if none."""
    path = manifest.metadata.get("metadata", {}).get("history")
    if not path:
        return None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    history = []
    for line in lines:
        record = json.loads(line) if line.strip() else {}
        history += [(record.get("step"), key, float(record[key])) for key in _HISTORY_KEYS if key in record]
    return history


def compare_losses(a: Manifest, b: Manifest) -> tuple[str, float] | None:
    """('bitwise', 0.0), ('within', max relative difference) or ('differs', ...); None without histories."""
    old, new = loss_history(a), loss_history(b)
    if old is None or new is None:
        return None
    if [(s, k) for s, k, _ in old] != [(s, k) for s, k, _ in new]:
        return ("differs", float("inf"))
    worst = max((abs(x - y) / max(abs(x), 1e-12) for (_, _, x), (_, _, y) in zip(old, new, strict=True)), default=0.0)
    if worst == 0.0:
        return ("bitwise", 0.0)
    return ("within", worst) if worst <= LOSS_RTOL else ("differs", worst)
