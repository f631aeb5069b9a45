"""The one hub policy of hybridrs: there may be no model/dataset hub, so anything that would
download first checks, quickly, that the hub can be reached, and otherwise fails at once with a
message that says what to pass instead."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["hub_dataset", "hub_offline", "hub_snapshot", "hub_unreachable_reason"]


def hub_offline() -> bool:
    """Whether the environment asks for offline mode (``HF_HUB_OFFLINE`` and friends)."""
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(f, "").lower() in ("1", "true", "yes", "on") for f in flags)


def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the model/dataset hub cannot be reached (None when it can): a quick TCP probe of the
    endpoint ``huggingface_hub`` is configured with, so callers fail fast instead of waiting
    through the client's retries."""
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants
    except ImportError:
        return "huggingface_hub is not installed"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"cannot reach {host}:{port} ({e.strerror or type(e).__name__})"


def hub_snapshot(name: str, field: str) -> str:
    """A hub model's local snapshot directory, downloaded only when the hub is reachable.

    Raises:
        ValueError: naming ``field``, when the hub cannot be reached.
    """
    reason = "offline mode is set" if hub_offline() else hub_unreachable_reason()
    if reason is not None:
        raise ValueError(
            f"{field}: {name!r} is not a local directory and the hub is unreachable ({reason}); "
            "pass a local model directory or 'default'"
        )
    from huggingface_hub import snapshot_download

    return str(snapshot_download(name))


def hub_dataset(name: str, split: str) -> Any:
    """A hub dataset through ``datasets``, failing fast when the hub is unreachable."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        import datasets
    except ImportError as e:
        raise ImportError("loading a hub dataset needs: pip install 'hybridrs[model]'") from e
    # offline mode: the datasets library may still answer from its local cache
    reason = None if hub_offline() else hub_unreachable_reason()
    if reason is not None:
        raise ValueError(
            f"source: {name!r} is not a local file or directory, and the hub is unreachable "
            f"({reason}). Pass a local JSONL file, a LAReQA directory or a datasets.Dataset."
        )
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as e:  # the hub's many failure types: no network, offline mode, 404
        raise ValueError(
            f"source: could not load dataset {name!r} from the hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). No hub reachable? Pass a local JSONL "
            "file, a LAReQA directory or a datasets.Dataset instead."
        ) from None
