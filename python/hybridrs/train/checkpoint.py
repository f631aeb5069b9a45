"""Checkpoints: written atomically (a temporary directory, fsynced, renamed at the end), the
last ``limit`` kept, restored exactly (model, optimiser, scheduler, every RNG, the sampler)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "find_checkpoint",
    "fsync_tree",
    "list_checkpoints",
    "load_checkpoint",
    "save_checkpoint",
]


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints in ``out`` (``checkpoint-N`` with a trainer_state.json), oldest
    first; a save cut short (``.tmp-checkpoint-N``) is never listed."""
    cps = [
        p
        for p in out.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return sorted(cps, key=lambda p: int(p.name.split("-")[1]))


def fsync_tree(root: Path) -> None:
    """fsyncs every file under ``root`` and the directories themselves."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            with open(Path(dirpath) / f, "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(
    out: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    limit: int,
) -> Path:
    """Writes ``out/checkpoint-{step}`` atomically and keeps the last ``limit``. ``state`` (JSON)
    is stored as trainer_state.json with ``global_step`` added."""
    import torch

    final = out / f"checkpoint-{step}"
    tmp = out / f".tmp-checkpoint-{step}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model.state_dict(), tmp / "model.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(
        {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        tmp / "rng.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps({"global_step": step, **state}, indent=2))
    fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(out)[:-limit]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(out: Path, which: str) -> Path:
    """``"last"`` (the newest complete checkpoint in ``out``) or a checkpoint directory."""
    if which in ("last", "true", "True"):
        cps = list_checkpoints(out)
        if not cps:
            raise ValueError(f"resume_from_checkpoint: no checkpoint in {out}")
        return cps[-1]
    path = Path(which)
    if not (path / "trainer_state.json").exists():
        raise ValueError(f"resume_from_checkpoint: {str(path)!r} is not a checkpoint")
    return path


def load_checkpoint(
    path: Path, model: Any, optimizer: Any, scheduler: Any, device: Any
) -> dict[str, Any]:
    """Restores model, optimiser, scheduler and every RNG from ``path``; returns its
    trainer_state.json."""
    import torch

    state: dict[str, Any] = json.loads((path / "trainer_state.json").read_text())
    model.load_state_dict(torch.load(path / "model.pt", map_location=device))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    rng = torch.load(path / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state
