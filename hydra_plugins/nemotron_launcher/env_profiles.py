"""env.toml profiles as options of the `launcher` group: `python -m nemotron launcher=NAME` for a `[NAME]` table.

`EnvProfilesSearchPath` adds `nemotron-env://<absolute path of env.toml>` to Hydra's search path when an
env.toml is found (NEMOTRON_ENV_FILE, else walking up from the working directory), after the packaged and
user config dirs, so those win on a name clash. `EnvProfilesConfigSource` serves `launcher/<profile>` from
that file, translated by `nemotron.cluster.profiles.profile_config`; `--help` lists the profiles with the
other launchers.

A job re-composes its config on the node, so it reads env.toml again from the same absolute path (shared
filesystems; in a container the launcher mounts its directory), just like a `--config-dir`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.errors import ConfigCompositionException
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

SCHEME = "nemotron-env"
GROUP = "launcher"


class EnvProfilesSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from nemotron.env_toml import find_env_file
        from nemotron.errors import NemotronError

        try:
            path = find_env_file()
        except NemotronError:  # NEMOTRON_ENV_FILE names no file: reported where env.toml is read
            return
        if path is not None:
            search_path.append(provider="nemotron-env.toml", path=f"{SCHEME}://{os.path.abspath(path)}")


class EnvProfilesConfigSource(ConfigSource):
    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self._data: dict[str, Any] | None = None
        self._error: Exception | None = None

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _profiles(self) -> list[str]:
        """Profile names; [] if the file cannot be parsed (the error is raised when a profile is loaded)."""
        from nemotron.cluster.profiles import load_profiles, profile_names

        if self._data is None and self._error is None:
            try:
                self._data = load_profiles(Path(self.path))
            except Exception as exc:
                self._error = exc
        return profile_names(self._data) if self._data is not None else []

    def _name(self, config_path: str) -> str | None:
        group, _, name = config_path.rstrip("/").removesuffix(".yaml").partition("/")
        return name if group == GROUP and name and "/" not in name else None

    def available(self) -> bool:
        return Path(self.path).is_file()

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", GROUP)

    def is_config(self, config_path: str) -> bool:
        name = self._name(config_path)
        if name is None:
            return False
        # a broken env.toml claims the unknown name, so that loading it reports what is wrong with the file
        return name in self._profiles() or self._error is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if path == "" and results_filter in (None, ObjectType.GROUP):
            return [GROUP]
        if path == GROUP and results_filter in (None, ObjectType.CONFIG):
            return self._profiles()
        return []

    def load_config(self, config_path: str) -> ConfigResult:
        from nemotron.cluster.profiles import profile_config
        from nemotron.errors import NemotronError

        name = self._name(config_path)
        self._profiles()
        if self._error is not None:
            raise ConfigCompositionException(str(self._error))
        try:
            node = profile_config(self._data, name, source=self.path)
        except NemotronError as exc:
            raise ConfigCompositionException(str(exc)) from None
        return ConfigResult(
            config=OmegaConf.create(node),
            path=f"{SCHEME}://{self.path}",
            provider=self.provider,
            header={"package": "_global_"},
        )
