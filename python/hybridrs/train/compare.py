"""``hybridrs-train --compare mono,cross,hybrid``: the strategies trained from the same start,
next to the untrained model and the TF-IDF baseline, in both directions (MLQA-R -> XQuAD-R
and XQuAD-R -> MLQA-R). Writes ``comparison.md`` and ``comparison.png``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..data import eval_subset, load_lareqa
from ..evaluation import evaluate
from ..models import TfidfEncoder
from ..sampling import STRATEGY_ALPHA
from .settings import TrainConfig
from .trainer import train

__all__ = ["compare"]


def compare(cfg: TrainConfig, strategies: list[str]) -> dict[str, Any]:
    """Trains each strategy in both directions and writes the comparison table and chart."""
    bad = [s for s in strategies if s not in STRATEGY_ALPHA]
    if bad or not strategies:
        raise ValueError(
            f"compare: strategies must be among {sorted(STRATEGY_ALPHA)}, got {strategies}"
        )
    root = Path(cfg.output_dir)
    data = Path(cfg.train_data).parent
    directions = [(data / "mlqa-r", data / "xquad-r"), (data / "xquad-r", data / "mlqa-r")]
    rows: list[dict[str, Any]] = []
    for train_set, eval_set in directions:
        tag = f"{train_set.name}->{eval_set.name}"
        ds = eval_subset(
            load_lareqa(eval_set),
            cfg.eval_languages,
            cfg.eval_articles,
            cfg.eval_max_questions_per_language,
            on_cpu=True,
        )
        tf = evaluate(ds, TfidfEncoder().scores(ds)).summary()
        rows.append({"direction": tag, "model": "TF-IDF", **tf})
        untrained_done = False
        for strategy in strategies:
            run = dataclasses.replace(
                cfg,
                strategy=strategy,
                alpha=None,
                train_data=str(train_set),
                eval_data=[str(eval_set)],
                output_dir=str(root / f"{tag}-{strategy}"),
                overwrite_output_dir=True,
                skip_eval_before=untrained_done,
            )
            rep = train(run)
            if not untrained_done:
                rows.append(
                    {
                        "direction": tag,
                        "model": "untrained",
                        **rep["before"][eval_set.name]["summary"],
                    }
                )
                untrained_done = True
            rows.append(
                {"direction": tag, "model": strategy, **rep["after"][eval_set.name]["summary"]}
            )
    lines = [
        "| direction | model | mono | cross | multi | rank distance |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['direction']} | {r['model']} | {r['mono']:.4f} | {r['cross']:.4f} | "
        f"{r['multi']:.4f} | {r['rank_distance']:.1f} |"
        for r in rows
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparison.md").write_text("\n".join(lines) + "\n")
    (root / "comparison.json").write_text(json.dumps(rows, indent=2))
    _chart(rows, root / "comparison.png")
    print("\n".join(lines))
    return {"rows": rows}


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dirs = list(dict.fromkeys(r["direction"] for r in rows))
    fig, axes = plt.subplots(1, len(dirs), figsize=(6 * len(dirs), 3.8), squeeze=False)
    for ax, d in zip(axes[0], dirs, strict=False):
        sub = [r for r in rows if r["direction"] == d]
        x = np.arange(3)
        w = 0.8 / len(sub)
        for i, r in enumerate(sub):
            ax.bar(x + i * w, [r["mono"], r["cross"], r["multi"]], w, label=r["model"])
        ax.set_xticks(x + 0.4 - w / 2, ["mono", "cross", "multi"])
        ax.set_ylim(0, 1)
        ax.set_title(d)
        ax.set_ylabel("mAP")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
