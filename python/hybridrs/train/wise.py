"""WiSE-FT after training: the trained weights interpolated with the base model's at one
lambda, or at the lambda chosen on the held-out validation split ('auto': the highest
multilingual mAP among the lambdas whose monolingual mAP is not below the base model's, so that
monolingual accuracy is never paid for), with the curve over lambda saved (JSON and a plot)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data import RetrievalSet
from ..evaluation import evaluate
from ..models import Encoder, set_interpolated

__all__ = ["choose_lambda", "plot_curve", "wise_ft"]


def choose_lambda(curve: Sequence[dict[str, float]]) -> float:
    """The lambda with the highest ``multi`` among the points whose ``mono`` is at least the
    base model's (the point at lambda 0; without it, the lowest lambda's). Ties: the smaller
    lambda."""
    if not curve:
        raise ValueError("wise_ft: an empty curve")
    pts = sorted(curve, key=lambda p: p["lambda"])
    floor = pts[0]["mono"]
    ok = [p for p in pts if p["mono"] >= floor]
    best = max(ok, key=lambda p: (p["multi"], -p["lambda"]))
    return float(best["lambda"])


def plot_curve(curve: Sequence[dict[str, float]], chosen: float, path: str | Path) -> None:
    """mono / cross / multi mAP (left axis) and rank distance (right axis) against lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(curve, key=lambda p: p["lambda"])
    lam = [p["lambda"] for p in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("mono", "cross", "multi"):
        ax.plot(lam, [p[key] for p in pts], marker="o", label=f"{key} mAP")
    ax.set_xlabel("lambda (0 = base model, 1 = trained)")
    ax.set_ylabel("mAP (validation)")
    ax2 = ax.twinx()
    ax2.plot(lam, [p["rank_distance"] for p in pts], "k--", marker="x", label="rank distance")
    ax2.set_ylabel("rank distance")
    ax.axvline(chosen, color="grey", lw=0.8)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower center")
    ax.set_title(f"WiSE-FT on the validation split (chosen lambda {chosen:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def wise_ft(
    encoder: Encoder,
    base_state: dict[str, Any],
    lambdas: Sequence[float],
    validation: RetrievalSet | None,
    out: Path | None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    embeddings: dict[int, Any] | None = None,
) -> dict[str, Any]:
    """Sets ``encoder.model``'s weights to the WiSE-FT interpolation with ``base_state`` and
    returns ``{"lambda": ..., "curve": [...]}``. With one lambda it is used as given; with
    several, each is evaluated on ``validation`` and :func:`choose_lambda` picks one
    (``wise_ft.json`` and ``wise_ft.png`` written to ``out``); the chosen weights' embeddings of
    ``validation`` then go into ``embeddings`` (keyed by ``id(validation)``), if given, so
    that evaluating them again needs no second encoding."""
    model = encoder.model
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    curve: list[dict[str, float]] = []
    encoded: dict[float, Any] = {}
    if len(lambdas) == 1:
        chosen = float(lambdas[0])
    else:
        if validation is None:
            raise ValueError("wise_ft: 'auto' needs the validation split (--validation_split)")
        for lam in lambdas:
            set_interpolated(model, base_state, trained, lam)
            q, c = encoder.embed(validation, progress=progress)
            encoded[float(lam)] = (q, c)
            s = evaluate(validation, q, c).summary()
            point = {"lambda": float(lam)}
            point.update({k: float(s[k]) for k in ("mono", "cross", "multi", "rank_distance")})
            curve.append(point)
            log(
                f"[wise-ft] lambda {lam:g}: mono {s['mono']:.4f}  cross {s['cross']:.4f}  "
                f"multi {s['multi']:.4f}  rank distance {s['rank_distance']:.1f}"
            )
        chosen = choose_lambda(curve)
        if out is not None:
            (out / "wise_ft.json").write_text(
                json.dumps({"lambda": chosen, "curve": curve}, indent=2)
            )
            plot_curve(curve, chosen, out / "wise_ft.png")
    set_interpolated(model, base_state, trained, chosen)
    if embeddings is not None and validation is not None and chosen in encoded:
        embeddings[id(validation)] = encoded[chosen]
    log(f"[wise-ft] weights = {1 - chosen:g} x base + {chosen:g} x trained")
    return {"lambda": chosen, "curve": curve}
