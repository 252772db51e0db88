"""`nemotron-art rerun REF [--dry-run] [--launcher L]`: run again the job that committed REF, from its manifest.

The run record holds the stage's overrides as typed (`stage=pretrain_data scale.max_rows_per_source=300 ...`)
and the exact versions the job used. The rerun is `python -m nemotron` with those overrides plus

    ++artifacts.pins=['NAME=NAME:vN', ...]      every input as the exact version the original used (never latest)
    ++artifacts.reproduces=['NAME:vN', ...]     every version the original job committed: each new version
                                                records the one with its name as `reproduces`

against the same store. Before running it says how this checkout differs from the one that made REF (git
commit, dirty flag, Python, package versions); afterwards it checks what the stage promises: data stages the
same file digests (files naming their own output directory aside), CPU training stages the same loss history.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

from nemotron.artcli import make_console, reproduce
from nemotron.errors import ArtifactNotFoundError, NemotronError
from nemotron.secrets import REDACTED
from nemotron.store.manifest_store import ManifestStore
from nemotron.store.records import Manifest

console = make_console(stderr=True)  # stdout carries the stage's JSON lines only
_OWN_KEYS = ("artifacts.pins=", "artifacts.reproduces=")
_CONFIG_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")
DATA_STAGES = {"pretrain_data", "sft_data", "rl_data"}
TRAINING_STAGES = {"pretrain", "sft", "rl"}


@dataclass
class RerunPlan:
    original: Manifest
    stage: str | None
    command: list[str]
    env: dict[str, str]
    inputs: list[str]
    outputs: list[str]
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def shell(self) -> str:
        root = f"NEMOTRON_ARTIFACTS_ROOT={shlex.quote(self.env['NEMOTRON_ARTIFACTS_ROOT'])}"
        return f"{root} {shlex.join(['python', *self.command[1:]])}"


def rerun(store: ManifestStore, args: Namespace) -> int:
    plan = plan_rerun(store, args.ref, launcher=args.launcher)
    console.print(f"rerun of {plan.original.ref} (stage {plan.stage or '?'}): {promise(plan)}")
    console.print(f"  inputs pinned: {', '.join(plan.inputs) or '-'}")
    console.print(f"  command: {plan.shell()}")
    for line in plan.differences or ["code version: the same git commit, dirty flag, Python and packages"]:
        console.print(f"  {line}")
    for note in plan.notes:
        console.print(f"  note: {note}")
    if args.dry_run:
        return 0
    before = {ref.partition(":")[0]: store.latest_version(ref.partition(":")[0]) or 0 for ref in plan.outputs}
    result = subprocess.run(plan.command, env=plan.env)
    if result.returncode != 0:
        console.print(f"rerun of {plan.original.ref} failed (exit {result.returncode}); see the stage's error above")
        return result.returncode
    return _check(store, plan, before)


def plan_rerun(store: ManifestStore, reference: str, launcher: str | None = None) -> RerunPlan:
    """Everything the rerun will do, checked: the command, its pins, and how the code version differs."""
    original = store.resolve(reference)
    run = original.run
    if run is None or not _entry_point(run.command):
        how = " ".join(run.command) if run and run.command else "no run record"
        raise NemotronError(
            f"{original.ref} was not committed by a `python -m nemotron` job ({how}): rerun reproduces stage "
            "runs only. A version registered or imported has nothing to run; a script's version is rerun by "
            "running the script again with the inputs it names."
        )
    outputs = reproduce.siblings(store, original)
    own = {m.ref for m in outputs}
    inputs = [ref for ref in original.used_artifacts if ref not in own]
    _check_inputs(store, original, inputs)
    overrides, notes = _overrides(run.overrides, launcher)
    pins = [f"{ref.partition(':')[0]}={ref}" for ref in inputs]
    command = [sys.executable, "-m", "nemotron", *_config_flags(run.command), *overrides]
    if pins:
        command.append(f"++artifacts.pins={_hydra_list(pins)}")
    command.append(f"++artifacts.reproduces={_hydra_list([m.ref for m in outputs])}")
    env = {**os.environ, "NEMOTRON_ARTIFACTS_ROOT": store.root if store.is_local else store.url}
    if run.cwd and Path(run.cwd).resolve() != Path.cwd().resolve():
        notes.append(f"runs in {Path.cwd()} (the original ran in {run.cwd}); relative paths resolve here")
    return RerunPlan(original, _stage(run), command, env, inputs, [m.ref for m in outputs], _code_differences(run),
                     notes)  # fmt: skip


def _config_flags(command: list[str]) -> list[str]:
    """Hydra's `--config-dir DIR` / `-cd DIR` (a stage from the user's config dir) and the like, as typed: they
    are not overrides, so only the command line has them."""
    flags, items = [], iter(command[3:])
    for arg in items:
        name, sep, _ = arg.partition("=")
        if name in _CONFIG_FLAGS:
            flags += [arg] if sep else [arg, next(items, "")]
    return flags


def _hydra_list(items: list[str]) -> str:
    return "[" + ",".join(f'"{item}"' for item in items) + "]"


def _entry_point(command: list[str]) -> bool:
    return len(command) >= 3 and command[1:3] == ["-m", "nemotron"] or bool(command) and command[0] == "nemotron"


def _check_inputs(store: ManifestStore, original: Manifest, inputs: list[str]) -> None:
    """Every input must still exist at the exact version the original used; a later one would not reproduce it."""
    names = [ref.partition(":")[0] for ref in inputs]
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise NemotronError(
            f"{original.ref} was made from several versions of {', '.join(doubled)} "
            f"({', '.join(r for r in inputs if r.partition(':')[0] in doubled)}): its run record does not say "
            "which reference named which, so a rerun cannot pin them. Run the stage yourself with exact versions."
        )
    for ref in inputs:
        try:
            store.resolve(ref)
        except ArtifactNotFoundError as exc:
            raise NemotronError(
                f"Cannot rerun {original.ref}: its input {ref} is gone: {exc} A rerun reads every input at the "
                f"exact version the original used, never a later one, so nothing was run. Bring {ref} back "
                f"(`nemotron-art import-bundle` of an export that holds it) or run the stage anew on a version "
                "that exists."
            ) from exc


def _overrides(recorded: list[str], launcher: str | None) -> tuple[list[str], list[str]]:
    """The original overrides, less the pins of an earlier rerun and secrets (never recorded), plus a launcher."""
    overrides, notes, dropped = [], [], []
    for item in recorded:
        key = item.lstrip("+~")
        if key.startswith(_OWN_KEYS) or (launcher and key.startswith("launcher=")):
            continue
        if REDACTED in item:
            dropped.append(item.partition("=")[0])
            continue
        overrides.append(item)
    if launcher:
        overrides.append(f"launcher={launcher}")
    if dropped:
        notes.append(f"secret overrides were not recorded and are left out: {', '.join(dropped)} (set them in "
                     "your environment or env.toml)")  # fmt: skip
    return overrides, notes


def _stage(run) -> str | None:
    """The stage a run record ran: `nemotron.stages.<stage>.run`, or a backend's function named as the stage it
    runs for a model (`nemotron.backends.megatron_bridge.pretrain`, see conf/model/nano3.yaml's stage_targets)."""
    target = str((run.config.get("stage") or {}).get("_target_", ""))
    parts = target.split(".")
    if len(parts) >= 3 and parts[-1] == "run":
        return parts[-2]
    return parts[-1] if len(parts) >= 3 and parts[1] == "backends" else None


def _code_differences(run) -> list[str]:
    """How this checkout differs from the one that made the version: git commit, dirty flag, Python, packages."""
    import platform

    import nemotron
    from nemotron.tracking.runinfo import git_info, package_versions

    lines = []
    now = git_info(Path.cwd()) or git_info(Path(nemotron.__file__).resolve().parent)
    if (run.git and run.git.commit) != (now and now.commit):
        lines.append(f"git commit: {run.git.commit if run.git else '-'} -> {now.commit if now else '-'}")
    if run.git and now and run.git.dirty != now.dirty:
        lines.append(f"git dirty: {run.git.dirty} -> {now.dirty}")
    elif now and now.dirty:
        lines.append("git dirty: both checkouts had uncommitted changes (they may differ)")
    if run.python and run.python != platform.python_version():
        lines.append(f"python: {run.python} -> {platform.python_version()}")
    packages = package_versions()
    for name in sorted(set(run.packages) | set(packages)):
        if run.packages.get(name) != packages.get(name):
            lines.append(f"package {name}: {run.packages.get(name, '-')} -> {packages.get(name, '-')}")
    return [f"differs: {line}" for line in lines]


def promise(plan: RerunPlan) -> str:
    """What the rerun promises for this stage (and then checks)."""
    config = plan.original.run.config if plan.original.run else {}
    if plan.stage in DATA_STAGES:
        return "promised: byte-identical files (equal digests)"
    if plan.stage in TRAINING_STAGES:
        backend = (config.get("model") or {}).get("backend", "torch")
        device = str((config.get("stage") or {}).get("device") or config.get("device") or "cpu")
        processes = int((plan.original.metadata.get("metadata") or {}).get("world_size") or 1)
        if backend == "torch" and device == "cpu" and processes == 1:
            return ("promised: the same loss history bit for bit (torch on CPU, one process, same seed); a "
                    f"difference within a relative {reproduce.LOSS_RTOL:g} (another torch build) is reported, a "
                    "larger one fails the rerun")  # fmt: skip
        if backend == "torch" and device == "cpu":
            return (f"promised: the same loss history within a relative {reproduce.LOSS_RTOL:g} ({processes} "
                    "processes: the order of reductions may change the last bits)")  # fmt: skip
        return ("promised: nothing bitwise (GPU kernels and collectives are not deterministic); the loss "
                "history is compared and any difference reported")  # fmt: skip
    return "promised: the same config, inputs and code; outputs are compared by digest"


def _check(store: ManifestStore, plan: RerunPlan, before: dict[str, int]) -> int:
    """Compare each version committed since the rerun started that reproduces one of the original job's outputs
    (found in the store, so a launcher's jobs count too); exit 1 if the stage's promise was not kept."""
    failed, found = False, 0
    for name, last in before.items():
        for version in store.versions(name):
            new = store.manifest(name, version) if version > last else None
            if new is None or new.reproduces not in plan.outputs:
                continue
            found += 1
            old = store.resolve(new.reproduces)
            verdict, ok = _verdict(plan, old, new)
            failed |= not ok
            console.print(f"{new.ref} reproduces {old.ref}: {verdict}")
    if not found:
        console.print("no reproduced version was committed yet (a launcher that does not wait?): nothing checked")
    return 1 if failed else 0


def _verdict(plan: RerunPlan, old: Manifest, new: Manifest) -> tuple[str, bool]:
    from nemotron.artcli.diff import diff_manifests

    files = diff_manifests(old, new, store=None)["files"]
    changed = files["changed"] + files["only_in_a"] + files["only_in_b"]
    text = f"{files['same']} files identical"
    if changed:
        text += f", {len(changed)} DIFFER ({', '.join(changed[:5])})"
    ok = not changed or plan.stage not in DATA_STAGES
    losses = reproduce.compare_losses(old, new)
    if losses is not None:
        kind, worst = losses
        text += {"bitwise": "; loss history bitwise identical", "within": f"; loss history within {worst:.2g}",
                 "differs": f"; loss history DIFFERS (max relative {worst:.2g})"}[kind]  # fmt: skip
        ok = ok and (kind != "differs" or "nothing bitwise" in promise(plan))
    return text, ok
