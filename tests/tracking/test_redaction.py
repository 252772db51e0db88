"""Adversarial: a secret planted in the environment never appears in any file a run writes.

The secret reaches the job through a key whose name says nothing (`+stage.metadata.hub=${oc.env:HF_TOKEN}`),
so only redaction by value can catch it. Every file under the test's directory is scanned as bytes: the
output tree (.hydra, config.resolved.yaml, lineage.json, the job log), the artifact store (manifest.json,
metadata.json), the submitit folder (the submitted and result pickles) and the W&B offline run dir.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from helpers.clitools import clean_env, make_data, nemotron, ok

from nemotron.secrets import REDACTED, is_secret_name, redact, redact_override, secret_values

pytestmark = pytest.mark.adversarial


def _env(tmp_path: Path, secret: str, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    drop = {k: None for k in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_SILENT")}
    return clean_env(
        **{
            **drop,
            "HF_TOKEN": secret,
            "HOME": home,
            "WANDB_MODE": "offline",
            "WANDB_DIR": tmp_path / "wandb-dir",
            "WANDB_DATA_DIR": tmp_path / "wandb-data",
            "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
            "WANDB_CONFIG_DIR": tmp_path / "wandb-config",
            **extra,
        }
    )


def _leaks(base: Path, needle: str) -> list[str]:
    """Files under `base` whose bytes contain `needle` (pickles included: they store strings as UTF-8)."""
    data = needle.encode()
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and data in p.read_bytes())


def _register(tmp_path: Path, env: dict[str, str], *extra: str):
    data = make_data(tmp_path / "data")
    return nemotron(
        "stage=register",
        f"stage.path={data}",
        "stage.name=m",
        f"artifacts.manifest.root={tmp_path / 'store'}",
        *extra,
        cwd=tmp_path,
        env=env,
    )


RUNS = {
    "local": ["launcher=local"],
    "submitit_local": ["launcher=submitit_local"],
    "local_wandb_offline": ["launcher=local", "artifacts=manifest_wandb", "wandb.project=p"],
    "submitit_local_wandb_offline": ["launcher=submitit_local", "artifacts=manifest_wandb", "wandb.project=p"],
}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_env_secret_under_a_plain_key_is_written_nowhere(tmp_path, run):
    secret = f"hf_{uuid.uuid4().hex}"
    result = ok(_register(tmp_path, _env(tmp_path, secret), *run, "+stage.metadata.hub=${oc.env:HF_TOKEN}"))
    assert secret not in result.stdout + result.stderr
    store = tmp_path / "store"
    assert (store / "m" / "v1" / "manifest.json").is_file()
    assert REDACTED in (store / "m" / "v1" / "metadata.json").read_text()
    if "submitit_local" in run:
        assert list(tmp_path.glob("multirun/**/.submitit/**/*_result.pkl"))  # the scan below reads it
    if "artifacts=manifest_wandb" in run:
        assert any((tmp_path / "wandb-dir").rglob("*.wandb"))
    assert _leaks(tmp_path, secret) == []


def test_url_password_on_the_command_line_is_written_nowhere(tmp_path):
    password = f"pw-{uuid.uuid4().hex[:12]}"
    url = f"https://bob:{password}@mirror.example.com/models"
    result = ok(_register(tmp_path, _env(tmp_path, "unused-secret-0123"), f"+stage.metadata.mirror={url}"))
    assert password not in result.stdout + result.stderr
    assert _leaks(tmp_path, password) == []
    assert "https://bob:***REDACTED***@mirror.example.com/models" in (tmp_path / "store/m/v1/metadata.json").read_text()


def test_submitit_local_refuses_a_secret_value_typed_on_the_command_line(tmp_path):
    """Typed literally, the value would be pickled with the job's overrides before any redaction can run."""
    secret = f"hf_{uuid.uuid4().hex}"
    result = _register(tmp_path, _env(tmp_path, secret), "launcher=submitit_local", f"+stage.metadata.hub={secret}")
    assert result.returncode != 0
    assert "HF_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert _leaks(tmp_path, secret) == []


def test_slurm_advice_is_the_environment_not_an_interpolation(tmp_path):
    """The Slurm launcher's refusal must not recommend ${oc.env:...} in configs: that is the path of the leak."""
    from nemotron.cluster.checks import ClusterError, check_no_secret_values

    with pytest.raises(ClusterError) as caught:
        check_no_secret_values({"stage": {"hub": "x-0123456789"}}, "the job's config", {"HF_TOKEN": "x-0123456789"})
    message = str(caught.value)
    assert "${oc.env:HF_TOKEN}" not in message and "through the environment only" in message


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("passwd", True), ("db_pwd", True), ("auth", True), ("Authorization", True), ("bearer", True),
        ("private_key", True), ("privateKey", True), ("aws_credentials", True), ("HF_TOKEN", True),
        ("WANDB_API_KEY", True), ("client_secret", True),
        ("author", False), ("tokenizer", False), ("eod_token", False), ("input_key", False), ("max_new_tokens", False),
    ],
)  # fmt: skip
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_redact_by_value_name_and_in_text(tmp_path):
    value = "tok-0123456789abcdef"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"
    data = {
        "hub": f"prefix {value} suffix",
        "nested": [{"url": "s3://ak:sk-zz9@host/b", "header": "Authorization: Bearer abcdefgh12345678"}],
        "pem": pem,
        "password": "short",
        "path": str(tmp_path),
    }
    clean = redact(data, values=[value])
    assert clean == {
        "hub": f"prefix {REDACTED} suffix",
        "nested": [{"url": f"s3://ak:{REDACTED}@host/b", "header": f"Authorization: Bearer {REDACTED}"}],
        "pem": REDACTED,
        "password": REDACTED,
        "path": str(tmp_path),
    }
    assert redact_override(f"+stage.metadata.hub={value}", values=[value]) == f"+stage.metadata.hub={REDACTED}"


def test_secret_values_skip_paths_and_working_dirs(tmp_path, monkeypatch):
    """PWD is named like a secret (pwd) and SSH_AUTH_SOCK like one (auth): their values are locations, and
    removing them would break every path recorded under them."""
    environ = {"PWD": str(tmp_path), "SSH_AUTH_SOCK": str(tmp_path), "MY_TOKEN": "abcdefgh12", "X_KEY": "short"}
    assert secret_values(environ) == {"MY_TOKEN": "abcdefgh12"}
