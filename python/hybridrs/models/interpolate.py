"""Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): a fine-tuned model's weights
interpolated with the pre-trained ones, ``theta = (1 - lambda) * base + lambda * trained``.
lambda 0 is the base model exactly, lambda 1 the trained one; in between a model often keeps
most of what fine-tuning gained and most of what it lost (here: monolingual accuracy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate_state", "set_interpolated"]


def interpolate_state(base: Mapping[str, Any], trained: Mapping[str, Any], lam: float) -> dict:
    """``{name: (1 - lam) * base[name] + lam * trained[name]}`` for floating tensors; other
    tensors (integer buffers such as position ids) are taken from ``trained``. ``lam`` 0 and 1
    return exact copies of ``base`` and ``trained``.

    Raises:
        ValueError: ``lam`` outside [0, 1], or the two states differ in names or shapes.
    """
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:  # NaN fails too
        raise ValueError(f"wise_ft: lambda must lie in [0, 1], got {lam}")
    if set(base) != set(trained):
        diff = sorted(set(base) ^ set(trained))[:5]
        raise ValueError(f"wise_ft: base and trained weights differ in their tensors ({diff})")
    out = {}
    for k, t in trained.items():
        b = base[k]
        if tuple(b.shape) != tuple(t.shape):
            raise ValueError(
                f"wise_ft: tensor {k!r} has shape {tuple(b.shape)} in the base model and "
                f"{tuple(t.shape)} in the trained one"
            )
        if not t.is_floating_point() or lam == 1.0:
            out[k] = t.detach().clone()
        elif lam == 0.0:
            out[k] = b.detach().clone().to(t.dtype)
        else:
            out[k] = (b.to(t.dtype) * (1.0 - lam) + t * lam).detach()
    return out


def set_interpolated(
    model: Any, base: Mapping[str, Any], trained: Mapping[str, Any], lam: float
) -> None:
    """Loads the interpolation of ``base`` and ``trained`` (state dicts of ``model``'s
    architecture) into ``model`` in place."""
    state = interpolate_state(base, trained, lam)
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True)
