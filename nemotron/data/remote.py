"""Data stages that write to object storage: `stage.output_dir=s3://bucket/prefix` (any fsspec URL).

The ranks make their files in the job's own output directory, as they do without it (the shards, receipts and
rank notes need a POSIX directory: hard links, atomic renames, appends), and each rank copies the files it
finished to `{url}/data/...`; rank 0 copies the shared ones (plan, blend.json, the tokenizer) last, after every
rank is done. The artifact's path is then the URL, so the store records (and digests) the remote copy. A
resumed run (`stage.resume_from=` the interrupted job's output directory) reuses the local files as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nemotron.errors import NemotronError


def remote_url(output_dir: str | None) -> str | None:
    """`output_dir` when it is a URL other than a local path (`s3://...`), else None."""
    if output_dir and "://" in output_dir and not output_dir.startswith("file://"):
        return output_dir.rstrip("/")
    return None


def check_fresh(url: str, subdirs: Iterable[str]) -> None:
    """Refuse a remote output that already holds `subdirs` (committed data is never rewritten)."""
    for sub in subdirs:
        if _call(url, "exists", f"{url}/{sub}"):
            raise NemotronError(
                f"{url}/{sub} already exists: every run writes a fresh output directory (committed data is "
                "immutable). Choose another stage.output_dir."
            )


def upload(local_root: Path, url: str, relpaths: Iterable[str]) -> None:
    """Copy `local_root/relpath` to `url/relpath` for each; a symbolic link is copied as the file it names."""
    for relpath in relpaths:
        _call(url, "put_file", str((local_root / relpath).resolve()), f"{url}/{relpath}")


def upload_tree(local_root: Path, url: str) -> None:
    """Every file under `local_root` (links followed) to the same place under `url`."""
    files = sorted(p.relative_to(local_root).as_posix() for p in local_root.rglob("*") if p.is_file())
    upload(local_root, url, files)


def _call(url: str, method: str, *args: str) -> object:
    import fsspec

    try:
        fs, _ = fsspec.core.url_to_fs(url)
        return getattr(fs, method)(*args)
    except (OSError, ValueError, ImportError) as exc:
        raise NemotronError(_explain(url, exc)) from exc
    except Exception as exc:  # botocore's NoCredentialsError and the like are not OSErrors
        if type(exc).__module__.split(".")[0] not in {"botocore", "aiobotocore", "s3fs", "gcsfs", "google"}:
            raise
        raise NemotronError(_explain(url, exc)) from exc


def _explain(url: str, exc: BaseException) -> str:
    return (
        f"Cannot write the data to {url}: {type(exc).__name__}: {exc}. Check the URL, the credentials in your "
        "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...) and that the bucket exists."
    )
