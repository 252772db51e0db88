"""`nemotron.kit`: seed-style scripts (cli, apply_scale, print_complete) on the store, run as a user runs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.clitools import clean_env, manifest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).parents[2]

SCRIPT = """\
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from nemotron.kit import ModelArtifact, apply_scale, cli, print_complete


class Optim(BaseModel):
    lr: float = 1e-3
    warmup: int = 10


@dataclass
class Config:
    data: str = "${art:curated:latest,path}"
    rows: int = "${art:curated:latest,rows}"
    optim: Optim = field(default_factory=Optim)
    scale: str = "tiny"
    out: Path = Path("model-out")


config = cli(Config, config_file=Path(__file__).with_name("config.yaml"))
config.out.mkdir(exist_ok=True)
(config.out / "w.txt").write_text(str(config.optim.lr))
print(f"rows={config.rows} lr={config.optim.lr} scaled={apply_scale(50_000, config.scale)}", file=sys.stderr)
print_complete(model=ModelArtifact(path=config.out.resolve(), name="kit-model", step=config.optim.warmup))
"""


def _run(command: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=clean_env(), input=stdin, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Scripts outside the entry point") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_pipe_of_two_scripts_commits_two_versions_with_lineage(tmp_path: Path) -> None:
    """The README's lines, verbatim, in a copy of the repository's examples/ (the scripts are run, not imported)."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    pipe, lineage, refused = _readme_lines()
    assert "|" in pipe and pipe.startswith("python examples/kit_pipe/curate.py")

    result = _run(pipe, tmp_path)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)  # the last script's JSON line (stdout is a pipe)
    assert line["uri"] == "art://counted-model:v1"
    store = tmp_path / "artifacts"
    model, data = manifest(store, "counted-model", 1), manifest(store, "curated-text", 1)
    assert model["used_artifacts"] == ["curated-text:v1"] and data["used_artifacts"] == []
    assert model["run"]["command"][:2] == ["examples/kit_pipe/train.py", "steps=5"]
    assert model["run"]["config"]["steps"] == 5 and model["run"]["overrides"] == ["steps=5"]
    assert data["metadata"]["metadata"]["rows"] == 2000 and model["metadata"]["step"] == 5
    assert "committed curated-text" in result.stderr and "committed counted-model" in result.stderr

    tree = _run(lineage, tmp_path)
    assert tree.returncode == 0 and "counted-model:v1" in tree.stdout and "curated-text:v1" in tree.stdout
    again = _run("nemotron-art rerun counted-model:v1", tmp_path)
    assert again.returncode == 2 and "was not committed by a `python -m nemotron` job" in again.stderr

    bad = _run(refused, tmp_path)
    assert bad.returncode == 2 and bad.stdout == "" and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("train.py: error: stepz is not a key of Config") and len(bad.stderr.splitlines()) == 1
    assert not (store / "counted-model" / "v2").exists()


def test_a_failed_first_script_stops_the_second_with_one_paragraph(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    result = _run("python examples/kit_pipe/curate.py rows=-x | python examples/kit_pipe/train.py", tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr and len(lines) == 2, result.stderr
    assert lines[0].startswith("curate.py: error: The config of Config") and "rows" in lines[0]
    assert lines[1].startswith("train.py: error: Nothing to read on stdin: Artifact.load()")
    assert not (tmp_path / "artifacts").exists()


@pytest.fixture()
def kit_dir(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "config.yaml").write_text("optim:\n  warmup: 3\n")
    data = tmp_path / "curated-data"
    data.mkdir()
    (data / "rows.txt").write_text("a\nb\n")
    script = (f"from nemotron.kit import Artifact, print_complete\n"
              f"print_complete({{'curated': Artifact(path={str(data)!r}, metadata={{'rows': 2}})}})\n")  # fmt: skip
    (tmp_path / "curate.py").write_text(script)
    assert _run(f"{sys.executable} curate.py", tmp_path).returncode == 0
    return tmp_path


def test_art_interpolations_and_overrides_resolve_and_record_lineage(kit_dir: Path) -> None:
    result = _run(f"{sys.executable} train.py optim.lr=0.25 scale=small", kit_dir)
    assert result.returncode == 0, result.stderr
    assert "rows=2 lr=0.25 scaled=5000" in result.stderr
    model = manifest(kit_dir / "artifacts", "kit-model", 1)
    assert model["used_artifacts"] == ["curated:v1"] and model["metadata"]["step"] == 3  # warmup from config.yaml
    assert model["run"]["config"]["data"] == str(kit_dir / "curated-data")  # resolved, pinned to v1
    assert (kit_dir / "model-out" / "w.txt").read_text() == "0.25"


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        ("optim.lx=1", None, "optim.lx is not a key of Config"),
        ("rows=many", None, "rows: Input should be a valid integer"),
        ("optim.lr=fast", None, "optim.lr: Input should be a valid number"),
        ("--config bad.toml", "bad.toml:steps = [", "bad.toml is not valid TOML"),
        ("--config bad.json", 'bad.json:{"rows": 1,}', "bad.json is not valid JSON"),
        ("--config c.json", 'c.json:{"optim": {"warmup": "soon"}}', "optim.warmup: Input should be a valid integer"),
        ("--config c.yaml", "c.yaml:epochs: 3", "epochs is not a key of Config"),
        ("--config missing.yaml", None, "Cannot read the config file missing.yaml"),
        ("rows", None, "'rows' is not an override"),
        ("data=${art:nothing-here:latest,path}", None, "No artifact named 'nothing-here'"),
    ],
)
def test_a_bad_config_is_one_paragraph_and_exit_2(kit_dir: Path, args: str, config: str | None, message: str) -> None:
    if config:
        name, _, text = config.partition(":")
        (kit_dir / name).write_text(text + "\n")
    result = _run(f"{sys.executable} train.py '{args}'" if "$" in args else f"{sys.executable} train.py {args}",
                  kit_dir)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("train.py: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (kit_dir / "artifacts" / "kit-model").exists()


def test_seed_kit_imports_and_helpers() -> None:
    from pathlib import Path as P

    from nemotron.kit import (  # the seed kit's names, unchanged
        Artifact,
        DataBlendsArtifact,
        InputDatasetInfo,
        ModelArtifact,
        PretrainBlendsArtifact,
        SFTDataArtifact,
        SplitJsonlDataArtifact,
        apply_scale,
        print_step_complete,
    )

    assert DataBlendsArtifact is PretrainBlendsArtifact and callable(print_step_complete)
    assert ModelArtifact(path=P("/ckpt"), step=1).path == "/ckpt"  # the seed passes Path objects
    assert {Artifact, SFTDataArtifact, SplitJsonlDataArtifact, InputDatasetInfo}
    assert [apply_scale(50_000, s) for s in ("tiny", "small", "medium", "full")] == [10_000, 5_000, 15_000, 50_000]
    assert apply_scale(3, "tiny") == 3 and apply_scale(1, "small") == 1
    with pytest.raises(Exception, match="Unknown scale 'huge'"):
        apply_scale(10, "huge")
