"""End to end: team defaults from env.toml, found through NEMOTRON_ENV_FILE or by walking up from the working
directory; the command line wins; tracking can be switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.clitools import clean_env, json_line, make_data, manifest, nemotron, nemotron_art, ok

pytestmark = pytest.mark.integration


def _env_toml(path: Path, root: Path | None = None, wandb: bool | None = None) -> Path:
    lines = []
    if wandb is not None:
        lines += ["[artifacts]", f"wandb = {'true' if wandb else 'false'}"]
    if root is not None:
        lines += ["[artifacts.manifest]", f'root = "{root}"']
    lines += ["[wandb]", 'project = "team-project"', 'entity = "team-entity"']
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _register(cwd: Path, env: dict[str, str], data: Path, *extra: str):
    return nemotron("stage=register", f"stage.path={data}", "stage.name=team-data", *extra, cwd=cwd, env=env)


@pytest.fixture
def data(tmp_path):
    return make_data(tmp_path / "data")


def test_env_file_variable(tmp_path, data):
    team_root = tmp_path / "team-store"
    env_file = _env_toml(tmp_path / "elsewhere" / "team.toml", root=team_root)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = clean_env(NEMOTRON_ENV_FILE=env_file)
    line = json_line(ok(_register(cwd, env, data)))
    assert line["uri"] == "art://team-data:v1"
    run = manifest(team_root, "team-data", 1)["run"]
    assert run["config"]["artifacts"]["manifest"]["root"] == str(team_root)
    assert run["config"]["wandb"] == {"project": "team-project", "entity": "team-entity"}
    assert not (cwd / "artifacts").exists()

    shown = yaml.safe_load(ok(nemotron("stage=register", "--cfg", "job", "--resolve", cwd=cwd, env=env)).stdout)
    assert shown["wandb"] == {"project": "team-project", "entity": "team-entity"}
    assert shown["artifacts"]["manifest"]["root"] == str(team_root)

    # nemotron-art finds the same root
    listing = ok(nemotron_art("ls", "--json", cwd=cwd, env=env)).stdout
    assert '"name": "team-data"' in listing


def test_env_file_found_by_walking_up(tmp_path, data):
    team_root = tmp_path / "team-store"
    _env_toml(tmp_path / "project" / "env.toml", root=team_root)
    cwd = tmp_path / "project" / "experiments" / "today"
    cwd.mkdir(parents=True)
    env = clean_env()
    ok(_register(cwd, env, data))
    assert (team_root / "team-data" / "v1" / "manifest.json").is_file()
    assert manifest(team_root, "team-data", 1)["run"]["config"]["wandb"]["entity"] == "team-entity"
    assert ok(nemotron_art("show", "team-data", cwd=cwd, env=env)).returncode == 0

    # NEMOTRON_ENV_FILE takes precedence over the file found by walking up
    other_root = tmp_path / "other-store"
    other = _env_toml(tmp_path / "other.toml", root=other_root)
    ok(_register(cwd, clean_env(NEMOTRON_ENV_FILE=other), data))
    assert (other_root / "team-data" / "v1" / "manifest.json").is_file()
    assert not (team_root / "team-data" / "v2").exists()


def test_command_line_and_environment_win(tmp_path, data):
    team_root = tmp_path / "team-store"
    _env_toml(tmp_path / "env.toml", root=team_root)
    cwd = tmp_path / "work"
    cwd.mkdir()

    cli_root = tmp_path / "cli-store"
    ok(_register(cwd, clean_env(), data, f"artifacts.manifest.root={cli_root}", "wandb.project=mine"))
    assert (cli_root / "team-data" / "v1" / "manifest.json").is_file()
    assert not team_root.exists()
    wandb = manifest(cli_root, "team-data", 1)["run"]["config"]["wandb"]
    assert wandb == {"project": "mine", "entity": "team-entity"}

    env_root = tmp_path / "env-var-store"
    ok(_register(cwd, clean_env(NEMOTRON_ARTIFACTS_ROOT=env_root), data))
    assert (env_root / "team-data" / "v1" / "manifest.json").is_file()
    assert not team_root.exists()


@pytest.mark.parametrize(
    "switch_off",
    [["artifacts.manifest.root=null", "artifacts.wandb=false"], ["artifacts=none"]],
    ids=["root-null", "artifacts-none"],
)
def test_tracking_disabled(tmp_path, data, switch_off):
    team_root = tmp_path / "team-store"
    _env_toml(tmp_path / "env.toml", root=team_root, wandb=True)
    cwd = tmp_path / "work"
    cwd.mkdir()
    result = ok(_register(cwd, clean_env(NEMOTRON_ARTIFACTS_ROOT=tmp_path / "env-store"), data, *switch_off))
    line = json_line(result)
    assert line["uri"] is None and line["version"] is None
    assert line["path"] == str(data)
    assert "not tracked" in result.stderr
    assert not team_root.exists()
    assert not (tmp_path / "env-store").exists()
    assert not (cwd / "artifacts").exists()
    # the job still has its output dir, with an empty lineage
    job_dirs = list((cwd / "outputs" / "register").iterdir())
    assert len(job_dirs) == 1
    assert (job_dirs[0] / "lineage.json").is_file()


def test_wandb_from_env_toml_turns_the_mirror_on(tmp_path, data):
    team_root = tmp_path / "team-store"
    _env_toml(tmp_path / "env.toml", root=team_root, wandb=True)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = clean_env(WANDB_MODE="offline", WANDB_DIR=tmp_path / "wandb-dir", WANDB_API_KEY=None)
    ok(_register(cwd, env, data))
    wandb = manifest(team_root, "team-data", 1)["wandb"]
    assert wandb["project"] == "team-project" and wandb["entity"] == "team-entity"
    assert (team_root / "team-data" / "v1" / "wandb.json").is_file()
    # ...and the command line can switch the mirror off again
    ok(_register(cwd, env, data, "artifacts.wandb=false"))
    assert manifest(team_root, "team-data", 2)["wandb"] is None
    assert not (team_root / "team-data" / "v2" / "wandb.json").exists()


@pytest.mark.parametrize("problem", ["missing", "invalid"])
def test_bad_env_file_is_a_clear_error(tmp_path, data, problem):
    env_file = tmp_path / "team.toml"
    if problem == "invalid":
        env_file.write_text("[artifacts.manifest\nroot = \n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    result = _register(cwd, clean_env(NEMOTRON_ENV_FILE=env_file), data)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "warnings.warn" not in result.stderr
    phrase = "does not name an existing file" if problem == "missing" else "is not valid TOML"
    assert phrase in result.stderr
    assert str(env_file) in result.stderr
    assert not (cwd / "artifacts").exists()


# (id, env.toml bytes, phrases the one-paragraph error must contain)
BAD_ENV_TOML = [
    ("not-utf8", b'[wandb]\nproject = "\xff\xfe"\n', ["is not valid UTF-8", "byte 0xff"]),
    ("project-not-a-string", b"[wandb]\nproject = 5\n", ["[wandb] project = 5 must be a string"]),
    ("root-not-a-string", b"[artifacts.manifest]\nroot = 5\n", ["[artifacts.manifest] root = 5 must be a string"]),
    ("typo-in-key", b'[wandb]\nprojct = "x"\n', ["[wandb] has the key projct", "Did you mean project?",
                                                  "Known keys of [wandb]: entity, group"]),
    ("typo-in-nested-key", b'[artifacts.manifest]\nrot = "/x"\n', ["has the key rot", "Did you mean root?"]),
    ("loose-top-level-key", b'root = "/x"\n', ["top-level key root", "Did you mean root under [artifacts.manifest]?"]),
    ("typo-in-section", b'[wandbb]\nproject = "x"\n', ["[wandbb] holding project: did you mean [wandb]?"]),
    ("profile-named-like-a-packaged-launcher", b'[slurm]\nexecutor = "slurm"\npartition = "batch"\n',
     ["has a profile [slurm], but launcher=slurm always selects the packaged launcher", "[slurm-team]"]),
]  # fmt: skip


@pytest.mark.parametrize(("content", "phrases"), [c[1:] for c in BAD_ENV_TOML], ids=[c[0] for c in BAD_ENV_TOML])
def test_env_toml_errors_are_one_paragraph_and_commit_nothing(tmp_path, data, content, phrases):
    """A broken env.toml fails the run (exit 1) with one paragraph naming the file and the key, before any
    work: never a warning and exit 0, never a value used silently."""
    env_file = tmp_path / "env.toml"
    env_file.write_bytes(content)
    store = tmp_path / "store"
    result = _register(tmp_path, clean_env(), data, f"artifacts.manifest.root={store}")
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if str(env_file) in line]
    assert len(lines) == 1 and all(phrase in lines[0] for phrase in phrases), result.stderr
    assert not store.exists() and result.stdout == ""
    art = nemotron_art("ls", cwd=tmp_path, env=clean_env())  # the root rule reads env.toml too
    assert art.returncode != 0 and "Traceback" not in art.stderr and str(env_file) in art.stderr, art.stderr


def test_a_local_profile_that_behaves_like_the_packaged_one_is_accepted(tmp_path, data):
    """Seed env.toml files often have [local] (executor local): the packaged launcher=local does the same."""
    (tmp_path / "env.toml").write_text('[local]\nexecutor = "local"\n[wandb]\nproject = "p"\ntags = ["a"]\n')
    ok(_register(tmp_path, clean_env(), data, f"artifacts.manifest.root={tmp_path / 'store'}"))
