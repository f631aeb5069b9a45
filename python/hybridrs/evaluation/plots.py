"""Plots of evaluation reports: the query x candidate language mAP heatmap."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .report import EvalReport

__all__ = ["heatmap"]


def heatmap(report: EvalReport, path: str | Path, title: str | None = None) -> None:
    """Writes a PNG heatmap: the query x candidate language mAP matrix (cells labelled x100),
    and the pooled (multilingual) mAP column beside it, so the language structure shows at a
    glance."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_l = len(report.languages)
    mat = np.where(report.pair_n > 0, report.pair_map, np.nan)
    col = np.where(report.multi_n > 0, report.multi_map, np.nan)[:, None]
    cell = 0.5
    fig = plt.figure(figsize=(cell * (n_l + 4.5) + 1.5, cell * n_l + 1.6))
    grid = fig.add_gridspec(1, 3, width_ratios=[n_l, 2.6, 0.35], wspace=0.08)
    ax, ax2, cax = (fig.add_subplot(grid[0, i]) for i in range(3))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    im = ax.imshow(mat, vmin=0, vmax=1, cmap=cmap)
    ax.set_xticks(range(n_l), report.languages)
    ax.set_yticks(range(n_l), report.languages)
    ax.set_xlabel("candidate language")
    ax.set_ylabel("question language")

    def label(axis: Any, x: int, y: int, v: float) -> None:
        axis.text(
            x,
            y,
            f"{v * 100:.0f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v < 0.6 else "black",
        )

    for i in range(n_l):
        for j in range(n_l):
            if not np.isnan(mat[i, j]):
                label(ax, j, i, mat[i, j])
    # The pooled column, same row height, with the rank distance written beside it.
    ax2.imshow(col, vmin=0, vmax=1, cmap=cmap, extent=(-0.5, 0.5, n_l - 0.5, -0.5))
    ax2.set_xlim(-0.5, 2.1)
    ax2.set_xticks([0, 1.3], ["multi", "rank dist."], fontsize=8)
    ax2.set_yticks([])
    for side in ("top", "right", "bottom", "left"):
        ax2.spines[side].set_visible(False)
    for i in range(n_l):
        if not np.isnan(col[i, 0]):
            label(ax2, 0, i, col[i, 0])
            ax2.text(
                1.3,
                i,
                f"{report.rank_distance_by_lang[i]:.0f}",
                ha="center",
                va="center",
                fontsize=7,
            )
    fig.colorbar(im, cax=cax, label="mAP")
    s = report.summary()
    fig.suptitle(
        title
        or f"{report.name}: mono {s['mono']:.3f}, cross {s['cross']:.3f}, "
        f"multi {s['multi']:.3f}, rank distance {s['rank_distance']:.0f} (cells: mAP x 100)",
        fontsize=9,
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
