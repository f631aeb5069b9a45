"""Terms that keep a fine-tuned retriever close to its pre-trained self, so that removing
language bias does not cost monolingual accuracy:

* :class:`L2SP` (Li et al. 2018): ``weight * sum ||theta - theta_0||^2`` over the trained
  weights, ``theta_0`` the pre-trained values;
* :class:`Distiller`: KL divergence between the frozen base model's (teacher's) and the
  student's in-batch similarity distributions, ``KL(softmax(S_t / tau) || softmax(S_s / tau))``
  row by row, applied on monolingual steps (where the base model is already good).

Both are off at weight 0, and then add nothing to the loss and run nothing (plain training,
bit for bit).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["L2SP", "Distiller"]


class L2SP:
    """The L2-SP penalty towards the weights ``model`` has now (call before training).

    Args:
        model: The model about to be trained; its trainable parameters are copied.
        weight: The penalty's weight (> 0).
    """

    def __init__(self, model: Any, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"l2sp_weight: must be > 0 to build the penalty, got {weight}")
        self.weight = float(weight)
        self.anchor = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }

    def __call__(self, model: Any) -> Any:
        """``weight * sum ||theta - theta_0||^2`` (a scalar tensor with gradients)."""
        total = None
        for n, p in model.named_parameters():
            a = self.anchor.get(_bare(n))
            if a is None or not p.requires_grad:
                continue
            d = (p - a).pow(2).sum()
            total = d if total is None else total + d
        if total is None:
            raise ValueError("l2sp_weight: the model has no trained parameter to anchor")
        return self.weight * total


def _bare(name: str) -> str:
    """A parameter name without a DDP ``module.`` prefix."""
    return name[len("module.") :] if name.startswith("module.") else name


class Distiller:
    """Distillation from a frozen copy of the base model on monolingual steps.

    Args:
        encoder: The :class:`~hybridrs.models.Encoder` about to be trained; its model is
            copied (frozen, eval mode) as the teacher.
        weight: The term's weight (> 0).
        temperature: The similarity temperature (the InfoNCE one).
    """

    def __init__(self, encoder: Any, weight: float, temperature: float) -> None:
        if not weight > 0:
            raise ValueError(f"distill_weight: must be > 0 to build the teacher, got {weight}")
        self.encoder = encoder
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.teacher = copy.deepcopy(getattr(encoder.model, "module", encoder.model))
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, q_student: Any, p_student: Any, q_batch: Any, p_batch: Any) -> Any:
        """``weight * KL(teacher || student)`` of the query-passage similarity rows (batch
        mean), the teacher run without gradients on the same tokenised batch."""
        import torch

        with torch.no_grad():
            tq = self.encoder.forward(q_batch, self.teacher)
            tp = self.encoder.forward(p_batch, self.teacher)
            t_logp = torch.log_softmax(tq @ tp.T / self.temperature, dim=-1)
        s_logp = torch.log_softmax(q_student @ p_student.T / self.temperature, dim=-1)
        kl = torch.nn.functional.kl_div(s_logp, t_logp, log_target=True, reduction="batchmean")
        return self.weight * kl
