"""`nemotron-art rerun` of a tiny CPU pretrain: the same seed gives the same loss history, bit for bit.

torch on CPU in one process is deterministic for this model (same kernels, same order, same seed): the rerun
promises a bitwise-identical loss history and checks it against a relative tolerance of LOSS_RTOL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.clitools import nemotron_art, ok
from helpers.training_store import SMALL_MODEL, Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

STEPS = ["stage.steps=8", "stage.batch_size=4", "stage.log_every=1", "stage.eval_every=4", "stage.eval_batches=1",
         "stage.checkpoint_every=4", "stage.name=rerun-model"]  # fmt: skip


def _losses(manifest: dict) -> list[tuple[int, str, float]]:
    history = Path(manifest["metadata"]["metadata"]["history"]).read_text().splitlines()
    records = [json.loads(line) for line in history if line.strip()]
    return [(r["step"], key, r[key]) for r in records for key in ("loss", "val_loss") if key in r]


def test_a_rerun_of_a_cpu_pretrain_gives_the_same_loss_history(store: Store, tmp_path: Path) -> None:
    from nemotron.artcli.reproduce import LOSS_RTOL

    original = store.make("pretrain", *SMALL_MODEL, *STEPS)
    ref = f"{original['name']}:v{original['version']}"
    result = ok(nemotron_art("rerun", ref, cwd=tmp_path, env=store.env))
    assert "promised: the same loss history bit for bit (torch on CPU, one process, same seed)" in result.stderr
    new = json.loads(result.stdout.splitlines()[-1])
    old_manifest = json.loads((store.root / original["name"] / f"v{original['version']}" / "manifest.json").read_text())
    new_manifest = json.loads((store.root / new["name"] / f"v{new['version']}" / "manifest.json").read_text())
    assert new_manifest["reproduces"] == ref and new_manifest["metadata"]["metadata"]["resumed_from"] is None
    assert new_manifest["used_artifacts"] == old_manifest["used_artifacts"]  # the same data and tokenizer versions
    old, again = _losses(old_manifest), _losses(new_manifest)
    assert len(old) == 8 + 3 and [entry[:2] for entry in old] == [entry[:2] for entry in again]
    assert again == old  # bitwise; the promise checked by rerun is within LOSS_RTOL
    assert all(abs(a[2] - b[2]) <= LOSS_RTOL * abs(a[2]) for a, b in zip(old, again, strict=True))
    assert f"{new['name']}:v{new['version']} reproduces {ref}: " in result.stderr
    assert "loss history bitwise identical" in result.stderr
    diff = json.loads(ok(nemotron_art("diff", ref, f"{new['name']}:v{new['version']}", "--json", cwd=tmp_path,
                                      env=store.env)).stdout)  # fmt: skip
    assert diff["fields"] == {} and diff["config"] == {} and diff["inputs"] == {} and diff["files"]["changed"] == []
