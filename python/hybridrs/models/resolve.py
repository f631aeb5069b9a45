"""One model resolver: ``"default"``, a local directory, or (only when a hub is reachable) a
hub name; and :func:`load_encoder` on top of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.hub import hub_snapshot
from .encoder import Encoder
from .tfidf import TfidfEncoder

__all__ = ["load_encoder", "resolve_model"]


def resolve_model(name: str | Path, field: str = "model") -> Path:
    """The local directory of a model.

    ``"default"`` is multilingual-e5-small built from PyPI packages (converted once, see
    :mod:`hybridrs.models.e5`); a local directory must hold ``config.json``; any other name is
    a hub name, fetched only when a hub can be reached, else a ``ValueError`` at once (there
    is no hub here).
    """
    if str(name) == "default":
        from .e5 import default_model_dir

        return default_model_dir()
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(
                f"{field}: {str(name)!r} has no config.json (not a transformers model)"
            )
        return path
    if path.exists():
        raise ValueError(f"{field}: {str(name)!r} is a file, not a model directory")
    return Path(hub_snapshot(str(name), field))


def load_encoder(spec: str, **kwargs: Any) -> TfidfEncoder | Encoder:
    """``"tfidf"`` (the lexical baseline), ``"default"`` (multilingual-e5-small built from
    PyPI packages) or a local model directory; ``kwargs`` go to :meth:`Encoder.load`."""
    if spec == "tfidf":
        return TfidfEncoder()
    return Encoder.load(resolve_model(spec, "encoder"), **kwargs)
