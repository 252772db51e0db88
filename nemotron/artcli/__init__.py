"""`nemotron-art`: look at and manage the artifact store.

    nemotron-art ls [NAME]                        names, or the versions of one name
    nemotron-art show REF [--json]                one version: type, path, inputs, files, run record
    nemotron-art lineage REF [--format F] [--down] [--depth N] [-o FILE]
                                                  upstream (or downstream) graph: tree, json, mermaid, dot, html
    nemotron-art verify REF [--full | --sample N] [--upstream]
                                                  recompute the digests of the files a version recorded
    nemotron-art diff A B                         config, inputs, code version and fields that differ
    nemotron-art rerun REF [--dry-run] [--launcher L]
                                                  run again the job that committed REF, every input pinned
    nemotron-art alias REF ALIAS                  point ALIAS at the version REF names
    nemotron-art import model PATH --stage S --step N | import data pretrain|sft|rl PATH
                                                  register existing data or checkpoints (zero-copy)
    nemotron-art export REF --closure OUT         copy a version and its whole lineage into a bundle dir
    nemotron-art import-bundle OUT                commit a bundle's versions into this store (digests checked)
    nemotron-art gc --keep-last N [--apply]       delete old versions: a plan first, --apply to do it
    nemotron-art fsck [--clean]                   list (and remove) what crashed writers left behind

The store root comes from --root, else NEMOTRON_ARTIFACTS_ROOT, else env.toml, else ./artifacts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from nemotron.errors import NemotronError

LINEAGE_FORMATS = ("tree", "json", "mermaid", "dot", "html")


def make_console(stderr: bool = False):
    """The console of `nemotron-art`. Piped or redirected, rich would assume 80 columns and cut names and
    paths short; there it is as wide as the content (COLUMNS, if set, still wins)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 1000
    return Console(highlight=False, soft_wrap=True, stderr=stderr, width=width)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemotron-art",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", help="artifact store root (a path or fsspec URL)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = _command(commands, "ls", "commands:ls", "list artifact names, or the versions of one name")
    ls.add_argument("name", nargs="?")
    ls.add_argument("--json", action="store_true")

    show = _command(commands, "show", "commands:show", "show one version (REF like name, name:v3, name:prod)")
    show.add_argument("ref")
    show.add_argument("--json", action="store_true")

    lineage = _command(commands, "lineage", "lineage:lineage", "the upstream (or downstream) lineage of a version")
    lineage.add_argument("ref")
    lineage.add_argument("--format", choices=LINEAGE_FORMATS, default="tree", help="output format (default: tree)")
    lineage.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    lineage.add_argument("--down", action="store_true", help="what was made from REF instead of what REF was made of")
    lineage.add_argument("--depth", type=int, default=None, help="levels to follow (default: all)")
    lineage.add_argument("-o", "--output", help="write to this file instead of stdout")

    verify = _command(commands, "verify", "verify:verify", "recompute the digests of a version's files")
    verify.add_argument("ref")
    how = verify.add_mutually_exclusive_group()
    how.add_argument("--full", action="store_true", help="digest every file (the default)")
    how.add_argument("--sample", type=int, metavar="N", help="digest N random files; check sizes of all")
    verify.add_argument("--seed", type=int, default=None, help="seed of --sample (default: random)")
    verify.add_argument("--workers", type=int, default=4, help="files hashed in parallel (default: 4)")
    verify.add_argument("--upstream", action="store_true", help="also every version REF was made from")
    verify.add_argument("--all", action="store_true", help="list passing (OK, UNCHECKED) files too")
    verify.add_argument("--json", action="store_true")

    diff = _command(commands, "diff", "diff:diff", "what differs between two versions")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--json", action="store_true")

    rerun = _command(commands, "rerun", "rerun:rerun", "run again the job that committed REF, inputs pinned")
    rerun.add_argument("ref")
    rerun.add_argument("--dry-run", action="store_true", help="print the command and the differences, run nothing")
    rerun.add_argument("--launcher", help="run it with this launcher (launcher=NAME), e.g. slurm; default: as before")

    alias = _command(commands, "alias", "commands:alias", "point ALIAS at the version REF names")
    alias.add_argument("ref")
    alias.add_argument("alias")

    _import_parser(commands)

    export = _command(commands, "export", "bundle:export_command", "copy a version and its lineage into a bundle")
    export.add_argument("ref")
    export.add_argument("--closure", required=True, metavar="OUT", help="bundle directory to create (must not exist)")
    export.add_argument("--json", action="store_true")

    bundle = _command(commands, "import-bundle", "bundle:import_bundle_command", "commit a bundle into this store")
    bundle.add_argument("bundle", help="a directory written by `nemotron-art export --closure`")
    bundle.add_argument("--json", action="store_true")

    gc = _command(commands, "gc", "gc:gc", "delete old versions (a dry-run plan unless --apply)")
    gc.add_argument("--keep-last", type=int, metavar="N", help="versions of each name to keep (required)")
    gc.add_argument("--apply", action="store_true", help="delete what the plan lists (default: only show it)")
    gc.add_argument("--data", action="store_true", help="also delete data directories nemotron created (bundles)")
    gc.add_argument("--json", action="store_true")

    fsck = _command(commands, "fsck", "commands:fsck", "find (and with --clean remove) orphans of crashed writers")
    fsck.add_argument("--clean", action="store_true")
    fsck.add_argument("--grace", type=float, default=300.0, help="only clean orphans older than this (s)")
    return parser


def _import_parser(commands) -> None:
    imports = _command(commands, "import", None, "register existing checkpoints or data (zero-copy)")
    kinds = imports.add_subparsers(dest="kind", required=True, metavar="KIND")
    model = _command(kinds, "model", "import_:import_model", "a checkpoint directory as a ModelArtifact")
    model.add_argument("path")
    model.add_argument("--stage", required=True, choices=("pretrain", "sft", "rl"), help="what it was trained by")
    model.add_argument("--step", required=True, type=int, help="training step of the checkpoint")
    model.add_argument("--format", choices=("auto", "hf", "megatron", "nemo_rl"), default="auto")
    model.add_argument("--base-model", help="reference of the model it was trained from")
    model.add_argument("--name", help="artifact name (default: from the directory name)")

    data = _command(kinds, "data", None, "prepared data as a typed data artifact")
    data_kinds = data.add_subparsers(dest="data_kind", required=True, metavar="STAGE")
    pretrain = _command(data_kinds, "pretrain", "import_:import_data", "a blend.json of .bin/.idx prefixes")
    pretrain.add_argument("path", metavar="BLEND.json")
    sft = _command(data_kinds, "sft", "import_:import_data", "a directory of packed SFT Parquet")
    sft.add_argument("path", metavar="DIR")
    sft.add_argument("--pack-size", type=int, help="sequence length of the packs (else from DIR/metadata.json)")
    rl = _command(data_kinds, "rl", "import_:import_data", "a directory of train/val/test JSONL")
    rl.add_argument("path", metavar="DIR")
    for sub in (pretrain, sft, rl):
        sub.add_argument("--name", help="artifact name (default: from the directory name)")


def _command(commands, name: str, target: str | None, help: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(target=target)
    # `nemotron-art ls --root R` as well as `nemotron-art --root R ls`; SUPPRESS keeps the first when absent
    sub.add_argument("--root", default=argparse.SUPPRESS, help="artifact store root (a path or fsspec URL)")
    return sub


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from nemotron.env_toml import resolve_root
        from nemotron.store.manifest_store import ManifestStore

        module, function = args.target.split(":")
        command = getattr(importlib.import_module(f"nemotron.artcli.{module}"), function)
        store = ManifestStore(resolve_root(args.root))
        return command(store, args)
    except NemotronError as exc:
        print(f"nemotron-art: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nemotron-art lineage ... | head`: the reader left, which is fine
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keeps Python from failing again at exit)
        return 0
    except OSError as exc:  # a full disk, a missing output directory, a permission: one line, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"nemotron-art: error: {args.command} failed: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
