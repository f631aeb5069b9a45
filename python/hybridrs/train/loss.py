"""The contrastive loss of hybrid batch training."""

from __future__ import annotations

from typing import Any

__all__ = ["info_nce"]


def info_nce(
    q: Any, p: Any, temperature: float, negatives: Any = None, label_offset: int = 0
) -> Any:
    """InfoNCE with in-batch negatives: query i's positive is passage ``label_offset + i`` of
    ``p`` (all passages of the global batch under cross-device negatives); ``negatives`` are
    extra hard-negative passages appended as candidates. Temperature 0.05 = scale 20."""
    import torch

    cands = p if negatives is None else torch.cat([p, negatives], dim=0)
    logits = q @ cands.T / temperature
    labels = torch.arange(q.shape[0], device=q.device) + label_offset
    return torch.nn.functional.cross_entropy(logits, labels)
