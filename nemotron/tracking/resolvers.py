"""OmegaConf resolvers, registered when this module is imported (nemotron.cli imports it).

    ${art:NAME,FIELD}        a field of an artifact; NAME is a key of `run:` (run.data: tiny-sft-data:v3)
                             or a reference itself; FIELD defaults to `path`; types are preserved
    ${nemotron.env:KEY,DEFAULT}   a value of env.toml by dotted key
    ${nemotron.root:}        the default artifact store root (NEMOTRON_ARTIFACTS_ROOT, env.toml, ./artifacts)
    ${nemotron.uid:}         a short id unique to this process, so two jobs started in the same second
                             never share an output directory

The functions are module-level so Hydra's launchers pickle them by reference. This module is imported
before every composition, so it imports the tracking machinery (Pydantic, the store) only when ${art:}
is resolved.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from omegaconf import OmegaConf

from nemotron.env_toml import default_root, env_value


def art(*args: Any, _root_: Any) -> Any:
    from nemotron.errors import BadReferenceError
    from nemotron.tracking.session import ArtifactSettings, Tracking, active_tracking

    if len(args) not in (1, 2) or not str(args[0]).strip():
        given = ",".join(map(str, args))
        raise BadReferenceError(
            f"${{art:{given}}} takes a reference and optionally a field: ${{art:NAME}} or ${{art:NAME,FIELD}} "
            "(NAME is a key of `run:` or a reference such as tiny-sft-data:v3; FIELD defaults to path), "
            f"got {len(args)} argument(s)."
        )
    name, field = str(args[0]), str(args[1]) if len(args) == 2 else "path"
    run_inputs = _root_.get("run") or {}
    role = name if name in run_inputs and run_inputs[name] is not None else None
    reference = run_inputs[role] if role else name
    tracking = active_tracking()
    if tracking is None:  # e.g. `--cfg job --resolve`, or a rank other than 0: resolve without recording
        tracking = Tracking(ArtifactSettings.from_config(_root_.get("artifacts"), _root_.get("wandb")))
    return tracking.load(str(reference), role=role).field(field)


def env(key: str, default: Any = None) -> Any:
    return env_value(key, default)


def root() -> str:
    return default_root()


_PROCESS_UID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"


def uid() -> str:
    return _PROCESS_UID


OmegaConf.register_new_resolver("art", art, replace=True)
OmegaConf.register_new_resolver("nemotron.env", env, replace=True)
OmegaConf.register_new_resolver("nemotron.root", root, replace=True)
OmegaConf.register_new_resolver("nemotron.uid", uid, replace=True, use_cache=True)
