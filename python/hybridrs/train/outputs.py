"""The output directory of a run: what hybridrs writes there, the lock that keeps a second run
out, what ``--overwrite_output_dir`` may remove (only hybridrs's own files), disk-full errors
that name the path, and metrics.jsonl cut back to a checkpoint on resume."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_NAME",
    "OWN_PATTERNS",
    "DiskFullError",
    "OutputLock",
    "own_entries",
    "remove_own_entries",
    "truncate_metrics",
    "writing",
]

#: The lock file in an output directory (never removed by overwrite).
LOCK_NAME = ".hybridrs.lock"
#: What a run writes into its output directory; overwrite removes these and nothing else.
OWN_PATTERNS = (
    "model",
    ".tmp-model",
    "checkpoint-*",
    ".tmp-checkpoint-*",
    "report.json",
    ".tmp-report.json",
    "report_before.json",
    "metrics.jsonl",
    ".tmp-metrics.jsonl",
    "heatmap_*.png",
    "results_*.parquet",
    ".tmp-results_*.parquet",
    "wise_ft.json",
    "wise_ft.png",
)


class DiskFullError(OSError):
    """No space left while writing a run's files; the message names the path."""


def own_entries(out: Path) -> list[Path]:
    """The entries of ``out`` that hybridrs writes (see :data:`OWN_PATTERNS`)."""
    return sorted(
        p for p in out.iterdir() if any(fnmatch.fnmatchcase(p.name, pat) for pat in OWN_PATTERNS)
    )


def remove_own_entries(out: Path) -> list[str]:
    """Removes hybridrs's own files from ``out`` (overwrite); returns their names. Anything
    else in the directory stays."""
    removed = []
    for p in own_entries(out):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(p.name)
    return removed


class OutputLock:
    """An exclusive lock on an output directory (``filelock``), taken without waiting: a
    second run into the same directory gets a clear error instead of interleaving."""

    def __init__(self, out: Path) -> None:
        from filelock import FileLock

        self.path = out / LOCK_NAME
        self._lock = FileLock(str(self.path))

    def acquire(self) -> None:
        """Takes the lock, or raises ValueError naming the directory."""
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(
                f"output_dir: another hybridrs-train run is writing into "
                f"{str(self.path.parent)!r} (it holds {self.path.name}); wait for it to end or "
                "choose another --output_dir"
            ) from None

    def release(self) -> None:
        """Releases the lock (the file stays, empty)."""
        self._lock.release()


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return None


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turns a failed write of ``path`` for want of space (ENOSPC / EDQUOT, or torch's
    serializer failing with the disk full) into a :class:`DiskFullError` that names it."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, f"no space left on device while writing {path}") from None
        raise
    except RuntimeError as e:  # torch.save reports a short write this way
        free = _free_bytes(path)
        if free is not None and free < 256 << 20:
            raise DiskFullError(
                errno.ENOSPC,
                f"no space left on device while writing {path} ({free} bytes free; {e})",
            ) from None
        raise


def truncate_metrics(path: Path, step: int) -> int:
    """Keeps the lines of metrics.jsonl up to ``step`` (a resumed run writes the later ones
    again); returns how many were dropped. Replaced atomically."""
    if not path.exists():
        return 0
    keep: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec: Any = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # a line cut short by a kill
            continue
        if isinstance(rec, dict) and int(rec.get("step", 0)) <= step:
            keep.append(line)
        else:
            dropped += 1
    tmp = path.with_name(".tmp-metrics.jsonl")
    tmp.write_text("".join(x + "\n" for x in keep), encoding="utf-8")
    os.replace(tmp, path)
    return dropped
