"""Paired statistics for comparing retrievers on the same questions.

Every summary figure (mono, cross, multi, rank distance, recall@1 / @10 pooled) is a macro
average over settings of per-question values, so it is a function of per-question-id sums: the
translations of one question (the same id in every language) and all their settings move
together when resampled. For two models A and B evaluated on the same set:

* the observed difference of the figure, averaged over the seeds of each model;
* a 95% interval from a **cluster bootstrap over question ids** of the seed-averaged
  differences (seed k of A is paired with seed k of B: same start, same group order). The
  seeds are averaged, not resampled: each question's difference already carries its seeds'
  noise, and resampling three seeds as well counts that noise twice (the calibration test
  shows intervals far too wide then). The per-seed differences are reported beside it, so a
  seed-level effect shows;
* a two-sided **paired randomisation test**: the A/B labels of each question id flipped at
  random (sign flips of its difference), ``n_perm`` times;
* **Holm** correction of the p-values over a whole table.

:func:`compare_cells` reads an experiment direction's cells (results.parquet) and returns the
table; :func:`markdown` and :func:`chart` render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FIGURES",
    "Contributions",
    "chart",
    "compare_cells",
    "contributions",
    "holm",
    "markdown",
    "paired_difference",
    "perms_for",
]

#: The summary figures compared, with whether higher is better.
FIGURES = {
    "mono": True,
    "cross": True,
    "multi": True,
    "rank_distance": False,
    "recall@1": True,
    "recall@10": True,
    "max@R": False,
    "own_first": False,
    "top10_own": False,
}
_COLUMN = {"max@R": "max_rank", "own_first": "own_first", "top10_own": "top10_own"}


class Contributions:
    """Per-question-id sums of one figure: ``values[i, s]`` (sum over the id's questions of
    their value in setting ``s``) and ``counts[i, s]`` (how many contribute); the figure is
    ``mean_s(values[:, s].sum() / counts[:, s].sum())`` over settings with questions."""

    def __init__(self, ids: list[str], values: np.ndarray, counts: np.ndarray) -> None:
        self.ids = ids
        self.values = values
        self.counts = counts

    def figure(self, weights: np.ndarray | None = None) -> float:
        """The figure, optionally with id weights (a bootstrap draw)."""
        v = self.values.sum(0) if weights is None else weights @ self.values
        n = self.counts.sum(0) if weights is None else weights @ self.counts
        ok = n > 0
        return float(np.mean(v[ok] / n[ok])) if ok.any() else float("nan")


def contributions(table: Any, figure: str) -> Contributions:
    """:class:`Contributions` of ``figure`` from a results table (see
    :func:`hybridrs.evaluation.details.question_results`)."""
    langs = table.schema.metadata[b"languages"].decode().split(",")
    ids = table.column("id").to_pylist()
    qlang = table.column("lang").to_pylist()
    li = {lang: i for i, lang in enumerate(langs)}
    n_l = len(langs)
    uniq = sorted(set(ids))
    row_of = {x: i for i, x in enumerate(uniq)}
    rows = np.array([row_of[x] for x in ids])
    ql = np.array([li[x] for x in qlang])
    n = len(ids)
    if figure in ("mono", "cross"):
        ap = np.stack([table.column(f"ap_{lang}").to_numpy() for lang in langs], axis=1)
        settings = n_l * n_l
        val = np.zeros((n, settings))
        cnt = np.zeros((n, settings))
        for lc in range(n_l):
            s = ql * n_l + lc
            keep = ~np.isnan(ap[:, lc]) & ((ql == lc) if figure == "mono" else (ql != lc))
            val[keep, s[keep]] = ap[keep, lc]
            cnt[keep, s[keep]] = 1
    else:
        if figure == "multi":
            v = table.column("ap").to_numpy()
        elif figure in _COLUMN:
            v = table.column(_COLUMN[figure]).to_numpy().astype(np.float64)
        else:
            ranks = table.column("ranks").to_pylist()
            if figure == "rank_distance":
                v = np.array([max(r) - min(r) for r in ranks], dtype=np.float64)
            elif figure.startswith("recall@"):
                k = int(figure.split("@")[1])
                v = np.array([np.mean(np.asarray(r) <= k) for r in ranks])
            else:
                raise ValueError(f"figure: unknown {figure!r}; one of {list(FIGURES)}")
        settings = n_l
        val = np.zeros((n, settings))
        cnt = np.zeros((n, settings))
        keep = ~np.isnan(v)
        val[keep, ql[keep]] = v[keep]
        cnt[keep, ql[keep]] = 1
    values = np.zeros((len(uniq), settings))
    counts = np.zeros((len(uniq), settings))
    np.add.at(values, rows, val)
    np.add.at(counts, rows, cnt)
    used = counts.sum(0) > 0
    return Contributions(uniq, values[:, used], counts[:, used])


def paired_difference(
    a: Sequence[Contributions],
    b: Sequence[Contributions],
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The difference of a figure between models A and B (``a[k]`` and ``b[k]`` are seed
    ``k``'s contributions; a model with one entry, such as an untrained baseline, is used
    with every seed): ``diff`` (mean over seeds), ``low`` / ``high`` (the cluster-bootstrap
    interval over question ids), ``p`` (paired randomisation test over ids), ``per_seed``
    (the difference of each seed pair)."""
    k = max(len(a), len(b))
    a = list(a) * k if len(a) == 1 else list(a)
    b = list(b) * k if len(b) == 1 else list(b)
    if len(a) != len(b):
        raise ValueError(f"a, b: {len(a)} and {len(b)} seeds cannot be paired")
    if any(x.ids != a[0].ids for x in (*a, *b)):
        raise ValueError("a, b: the models were evaluated on different questions")
    counts = a[0].counts
    d = np.stack(
        [x.values - y.values for x, y in zip(a, b, strict=False)]
    )  # (seeds, ids, settings)
    n_ids = counts.shape[0]
    tot = counts.sum(0)

    def fig(dsum: np.ndarray, nsum: np.ndarray) -> np.ndarray:
        ok = nsum > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(ok, dsum / np.where(ok, nsum, 1), 0.0)
        return r.sum(-1) / ok.sum(-1)

    observed = float(fig(d.mean(0).sum(0), tot))
    rng = np.random.default_rng(seed)
    dm = d.mean(0)
    w = rng.multinomial(n_ids, np.full(n_ids, 1 / n_ids), size=n_boot).astype(np.float64)
    boot = fig(w @ dm, w @ counts)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    hits = 0
    for start in range(0, n_perm, _PERM_CHUNK):  # in chunks: memory bounded for large n_perm
        m = min(_PERM_CHUNK, n_perm - start)
        signs = rng.choice([-1.0, 1.0], size=(m, n_ids))
        perm = fig(signs @ dm, np.broadcast_to(tot, (m, tot.shape[0])))
        hits += int(np.sum(np.abs(perm) >= abs(observed) - 1e-15))
    p = (1 + hits) / (1 + n_perm)
    per_seed = [float(fig(x.sum(0), tot)) for x in d]
    return {
        "diff": observed,
        "low": float(low),
        "high": float(high),
        "p": float(p),
        "per_seed": per_seed,
    }


#: Sign flips drawn at a time by :func:`paired_difference`.
_PERM_CHUNK = 2000


def perms_for(n_tests: int, n_perm: int) -> int:
    """Sign flips enough for Holm over ``n_tests`` tests: a randomisation p-value is at least
    ``1 / (1 + n_perm)``, so Holm's smallest adjusted p is ``n_tests / (1 + n_perm)``. Where
    ``n_perm`` leaves that near or above 0.05 (no difference could be called), it becomes
    ``40 * n_tests`` (smallest adjusted p about 0.025); otherwise it stays."""
    return n_perm if 20 * n_tests <= n_perm else 40 * n_tests


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def _cells(ddir: Path, name: str, seeds: Sequence[int], results: str) -> list[Any]:
    from .details import read_results

    if name.startswith("untrained"):
        p = ddir / name / results
        return [read_results(p)] if p.exists() else []
    out = []
    for s in seeds:
        p = ddir / f"{name}-seed{s}" / results
        if p.exists():
            out.append(read_results(p))
    return out


def compare_cells(
    ddir: str | Path,
    strategies: Sequence[str],
    seeds: Sequence[int],
    n_boot: int = 2000,
    n_perm: int = 2000,
    results: str = "results.parquet",
) -> dict[str, Any]:
    """The table of one experiment direction: every model's figures (mean over seeds, with a
    bootstrap interval) and every pair's paired differences (Holm-adjusted p-values, with
    enough sign flips for the size of the table: :func:`perms_for`). Seeds
    a strategy has not finished are left out (and listed). ``results``: the per-question
    results file of each cell to read (``heldout.parquet``: the held-out training articles)."""
    ddir = Path(ddir)
    models = ["untrained", "untrained-centered", *strategies]
    tables = {m: _cells(ddir, m, seeds, results) for m in models}
    models = [m for m in models if tables[m]]
    done_seeds = {m: len(tables[m]) for m in models}
    # pair seeds: only seeds every strategy finished
    common = min((len(tables[m]) for m in models if not m.startswith("untrained")), default=1)
    contrib = {
        m: {f: [contributions(t, f) for t in tables[m][: max(common, 1)]] for f in FIGURES}
        for m in models
    }
    rows = []
    for m in models:
        row: dict[str, Any] = {"model": m, "seeds": len(contrib[m]["multi"])}
        for f in FIGURES:
            vals = [c.figure() for c in contrib[m][f]]
            row[f] = float(np.mean(vals))
            if len(vals) > 1:
                row[f + "_seed_sd"] = float(np.std(vals, ddof=1))
        rows.append(row)
    pairs: list[dict[str, Any]] = []
    n_perm = perms_for(len(models) * (len(models) - 1) // 2 * len(FIGURES), n_perm)
    for i, ma in enumerate(models):
        for mb in models[i + 1 :]:
            for f in FIGURES:
                r = paired_difference(contrib[mb][f], contrib[ma][f], n_boot, n_perm)
                pairs.append({"a": mb, "b": ma, "figure": f, **r})
    for r, adj in zip(pairs, holm([float(r["p"]) for r in pairs]), strict=False):
        r["p_holm"] = adj
    return {
        "models": rows,
        "pairs": pairs,
        "seeds_done": done_seeds,
        "paired_seeds": common,
        "n_questions": tables[models[0]][0].num_rows if models else 0,
        "n_boot": n_boot,
        "n_perm": n_perm,
    }


def markdown(tables: dict[str, Any]) -> str:
    """The comparison tables as Markdown: per direction, the models, then the paired
    differences (A - B, 95% interval, Holm-adjusted p)."""
    out = []
    for direction, t in tables.items():
        out += [
            f"### {direction} ({t['n_questions']} questions; seeds paired: {t['paired_seeds']})",
            "",
            "| model | seeds | mono | cross | multi | rank distance | recall@1 | recall@10 "
            "| Max@R | own first | top-10 own |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in t["models"]:
            out.append(
                f"| {r['model']} | {r['seeds']} | {r['mono']:.4f} | {r['cross']:.4f} | "
                f"{r['multi']:.4f} | {r['rank_distance']:.1f} | {r['recall@1']:.4f} | "
                f"{r['recall@10']:.4f} | {r['max@R']:.1f} | {r['own_first']:.3f} | "
                f"{r['top10_own']:.3f} |"
            )
        out += [
            "",
            "| A - B | figure | difference | 95% interval | p (Holm) | per seed |",
            "|---|---|---:|---|---:|---|",
        ]
        for r in t["pairs"]:
            fmt = ".1f" if r["figure"] in ("rank_distance", "max@R") else ".4f"
            sig = " *" if r["p_holm"] < 0.05 else ""
            seeds = ", ".join(f"{x:+{fmt}}" for x in r.get("per_seed", []))
            out.append(
                f"| {r['a']} - {r['b']} | {r['figure']} | {r['diff']:+{fmt}} | "
                f"[{r['low']:+{fmt}}, {r['high']:+{fmt}}] | {r['p_holm']:.4f}{sig} | {seeds} |"
            )
        out.append("")
    return "\n".join(out)


def chart(tables: dict[str, Any], path: str | Path) -> None:
    """A chart of the paired differences against the untrained model, with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = ["mono", "cross", "multi", "recall@10"]
    fig, axes = plt.subplots(
        1, max(len(tables), 1), figsize=(6.5 * max(len(tables), 1), 3.8), squeeze=False
    )
    for ax, (direction, t) in zip(axes[0], tables.items(), strict=False):
        rows = [r for r in t["pairs"] if r["b"] == "untrained" and r["figure"] in figs]
        models = list(dict.fromkeys(r["a"] for r in rows))
        w = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            sub = [next(r for r in rows if r["a"] == m and r["figure"] == f) for f in figs]
            x = np.arange(len(figs)) + i * w
            y = np.array([r["diff"] for r in sub])
            err = np.array(
                [[r["diff"] - r["low"] for r in sub], [r["high"] - r["diff"] for r in sub]]
            )
            ax.bar(x, y, w, yerr=err, capsize=3, label=m)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(np.arange(len(figs)) + 0.4 - w / 2, figs)
        ax.set_ylabel("difference to the untrained model")
        ax.set_title(f"{direction} (95% intervals)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
