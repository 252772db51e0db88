"""Import-only stand-ins, for tests/realmb ONLY (its subprocess puts this directory on PYTHONPATH; nothing in the
nemotron package sees them).

Megatron-Bridge 0.6.2 and megatron-core 0.19.2 import a few packages at module level that cannot be installed on
a CPU machine (they build CUDA extensions) or are not on PyPI in the version required. They are never *run* by the
checks (no model is built, no kernel launched): a module of these names answers every attribute with a
placeholder class, and using one of them fails with a clear error instead of pretending to work.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

STUBBED = {
    "transformer_engine": "2.9.0",  # CUDA build (transformer-engine[pytorch])
}


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}", cls.__module__)


def _refuse(self, *args, **kwargs):
    raise RuntimeError(f"{type(self).__module__}.{type(self).__qualname__} is an import-only stand-in (tests/realmb)")


def _placeholder(name: str, module: str) -> type:
    namespace = {"__module__": module, "__qualname__": name, "__init__": _refuse}
    return _PlaceholderMeta(name.rsplit(".", 1)[-1], (), namespace)


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(name, self.__name__)
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = STUBBED[spec.name.split(".", 1)[0]]
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
