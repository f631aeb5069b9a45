"""The user cache of hybridrs (``$HYBRIDRS_CACHE``, else ``$XDG_CACHE_HOME/hybridrs`` or
``~/.cache/hybridrs``): the converted default encoder and cached embeddings."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["cache_root", "cached_embeddings"]


def cache_root() -> Path:
    """The cache directory (not created here)."""
    env = os.environ.get("HYBRIDRS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hybridrs"


def cached_embeddings(
    key: str, compute: Callable[[], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """(question, candidate) embeddings stored under ``cache_root()/embeddings``, keyed by a
    hash of ``key`` (which should name the model, the data fingerprint and every encoding
    setting); ``compute()`` runs only when nothing is stored. Written to a temporary file and
    renamed, so a kill never leaves a half-written entry."""
    h = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = cache_root() / "embeddings" / f"{h}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["q"], z["c"]
    q, c = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, q=q, c=c)
    os.replace(tmp, path)
    return q, c
