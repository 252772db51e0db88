"""Adds the config dirs listed in NEMOTRON_CONFIG_DIR (os.pathsep-separated) to Hydra's search path.

A team keeps its cluster profiles and stages in its own directory and sets NEMOTRON_CONFIG_DIR once,
instead of passing --config-dir on every command. Files there must use new option names: on a clash the
packaged config wins.
"""

from __future__ import annotations

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class NemotronSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for directory in filter(None, os.environ.get("NEMOTRON_CONFIG_DIR", "").split(os.pathsep)):
            search_path.append(provider="nemotron-config-dir", path=f"file://{os.path.abspath(directory)}")
