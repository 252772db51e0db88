"""`nemotron-art`: look at and manage the artifact store.

    nemotron-art ls [NAME]                 names, or the versions of one name
    nemotron-art show REF [--json]         one version: type, path, inputs, files, run record
    nemotron-art lineage REF [--json]      the upstream tree down to the sources
    nemotron-art alias REF ALIAS           point ALIAS at the version REF names
    nemotron-art fsck [--clean]            list (and remove) what crashed writers left behind

The store root comes from --root, else NEMOTRON_ARTIFACTS_ROOT, else env.toml, else ./artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys

from nemotron.errors import NemotronError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nemotron-art", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="artifact store root (a path or fsspec URL)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = commands.add_parser("ls", help="list artifact names, or the versions of one name")
    ls.add_argument("name", nargs="?")
    ls.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="show one version (REF like name, name:v3, name:prod)")
    show.add_argument("ref")
    show.add_argument("--json", action="store_true")

    lineage = commands.add_parser("lineage", help="the upstream lineage of a version")
    lineage.add_argument("ref")
    lineage.add_argument("--json", action="store_true")
    lineage.add_argument("--depth", type=int, default=None, help="levels to follow (default: all)")

    alias = commands.add_parser("alias", help="point ALIAS at the version REF names")
    alias.add_argument("ref")
    alias.add_argument("alias")

    fsck = commands.add_parser("fsck", help="find (and with --clean remove) orphans of crashed writers")
    fsck.add_argument("--clean", action="store_true")
    fsck.add_argument("--grace", type=float, default=300.0, help="only clean orphans older than this (s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from nemotron.artcli import commands
        from nemotron.tracking.settings import resolve_root
        from nemotron.tracking.store import ManifestStore

        store = ManifestStore(resolve_root(args.root))
        return getattr(commands, args.command)(store, args)
    except NemotronError as exc:
        print(f"nemotron-art: error: {exc}", file=sys.stderr)
        return 2


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
