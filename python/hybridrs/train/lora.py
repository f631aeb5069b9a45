"""LoRA (Hu et al. 2021, through the ``peft`` package) as an alternative to full
fine-tuning: low-rank adapters on the attention projections are trained, the base weights stay
frozen, and at the end the adapters are merged back, so the saved model is a plain
transformers model that loads and embeds like any other."""

from __future__ import annotations

from typing import Any

__all__ = ["add_lora", "merge_lora"]


def add_lora(model: Any, r: int, alpha: int, dropout: float, targets: str) -> Any:
    """``model`` wrapped with LoRA adapters of rank ``r`` on the modules named in
    ``targets`` (comma-separated, e.g. ``"query,key,value"``); only the adapters train.

    Raises:
        ImportError: without ``peft``.
        ValueError: a target module the model does not have.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ImportError("LoRA needs peft: pip install 'hybridrs[model]'") from e
    names = [t.strip() for t in targets.split(",") if t.strip()]
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in names if t not in present]
    if missing:
        raise ValueError(
            f"lora_target_modules: {missing} not in the model (it has e.g. "
            f"{sorted(present - {''})[:12]})"
        )
    cfg = LoraConfig(
        r=int(r),
        lora_alpha=int(alpha),
        lora_dropout=float(dropout),
        target_modules=names,
        bias="none",
    )
    return get_peft_model(model, cfg)


def merge_lora(model: Any) -> Any:
    """The plain model with the adapters merged into its weights (``model`` unchanged when it
    has no adapters)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
