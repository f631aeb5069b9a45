"""Scale benchmark: exact evaluation of a synthetic large multilingual set from embeddings.

Default: 1M candidates x 10k queries, d = 384, 10 languages, parallel relevance (each query is
relevant to its group's candidate in every language: 10 relevant per query). Candidates are
``normalize(B[g] + 0.6 * lang[l] + 0.5 * noise)`` for group ``g`` and language ``l``, queries the
same with more noise (2.2), so relevant candidates rank high as with a trained retriever, and the
language term pulls own-language candidates up (a biased retriever).

Printed side by side in one run: the bare matmul (numpy and torch, the same blocks of queries
against all candidates, nothing else; the faster is the baseline), exact evaluation in 1
process (:func:`evaluate_sharded` in a process group of one) and with the candidates sharded
over 2 processes (gloo), each process's peak resident memory against the size of the full
score matrix (never held), and whether the sharded metrics equal the single-process ones bit
for bit.

    python benches/bench_scale.py                        # 1M x 10k (a few minutes on 2 cores)
    python benches/bench_scale.py --n_candidates 200000 --n_queries 2000   # quick
    python benches/bench_scale.py --device cuda --procs 1 --backends fused  # a GPU, then the CPU

With ``--device cuda`` it first times, on the GPU, the bare matmul (torch, blocks of
``--gpu_rows`` queries against all candidates) and :func:`evaluate_sharded` scoring and
counting there (blocked backend, one process), with the GPU's peak memory; ``--procs ''``
skips the CPU runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from typing import Any

import numpy as np

from _machine import cpu_info


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Synthetic:
    """The data set, generated the same way in every process (seeded), candidates by block."""

    def __init__(self, n_candidates: int, n_queries: int, dim: int, n_langs: int, seed: int = 0):
        self.L, self.d, self.seed = n_langs, dim, seed
        self.G = n_candidates // n_langs
        self.nc = self.G * n_langs
        rng = np.random.default_rng(seed)
        self.base = rng.standard_normal((self.G, dim), dtype=np.float32)
        self.lang = 2.0 * rng.standard_normal((n_langs, dim), dtype=np.float32) / np.sqrt(dim)
        self.lang *= np.sqrt(dim) / np.linalg.norm(self.lang, axis=1, keepdims=True)
        self.q_group = rng.integers(0, self.G, n_queries)
        self.q_lang = np.sort(rng.integers(0, n_langs, n_queries))

    def candidates(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (row ``l * G + g``: grouped by language)."""
        out = np.empty((stop - start, self.d), dtype=np.float32)
        block = 65536
        for a in range(start - start % block, stop, block):
            rng = np.random.default_rng((self.seed, 1, a // block))
            noise = rng.standard_normal((block, self.d), dtype=np.float32)
            lo, hi = max(a, start), min(a + block, stop)
            rows = np.arange(lo, hi)
            x = (
                self.base[rows % self.G]
                + 0.6 * self.lang[rows // self.G]
                + 0.5 * noise[lo - a : hi - a]
            )
            out[lo - start : hi - start] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    def queries(self) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 2))
        noise = rng.standard_normal((len(self.q_group), self.d), dtype=np.float32)
        x = self.base[self.q_group] + 0.6 * self.lang[self.q_lang] + 2.2 * noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def dataset(self) -> Any:
        """A duck-typed retrieval set (the arrays the evaluator reads; no texts)."""
        ds = argparse.Namespace()
        ds.languages = tuple(f"l{i}" for i in range(self.L))
        ds.n_questions, ds.n_candidates = len(self.q_group), self.nc
        ds.question_lang = self.q_lang.astype(np.int64)
        ds.lang_offsets = (np.arange(self.L + 1) * self.G).astype(np.int64)
        rel = self.q_group[:, None] + (np.arange(self.L) * self.G)[None, :]
        ds.relevance_indices = np.ascontiguousarray(rel.reshape(-1), dtype=np.int64)
        ds.relevance_indptr = (np.arange(ds.n_questions + 1) * self.L).astype(np.int64)
        ds.name = "synthetic"
        return ds


def _flat(report: Any, bias: Any) -> dict[str, np.ndarray]:
    out = {f"m_{k}": v for k, v in report.per_query.items()}
    out.update(max_rank=bias.max_rank, lang_min_rank=bias.lang_min_rank, top=bias.top_counts)
    return out


def _evaluate(
    args: argparse.Namespace, rank: int, size: int, backend: str
) -> tuple[Any, Any, float]:
    from hybridrs.evaluation.sharded import evaluate_sharded, shard_range

    syn = Synthetic(args.n_candidates, args.n_queries, args.dim, args.langs)
    ds = syn.dataset()
    a, b = shard_range(ds.n_candidates, rank, size)
    c, q = syn.candidates(a, b), syn.queries()
    t0 = time.perf_counter()
    rows = args.block_rows if backend == "blocked" else args.fused_rows
    report, bias = evaluate_sharded(ds, q, c, block_rows=rows, backend=backend)
    return report, bias, time.perf_counter() - t0


def _worker(
    rank: int, size: int, args: argparse.Namespace, backend: str, rdv: str, out: str
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // size))
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=size)
    try:
        report, bias, secs = _evaluate(args, rank, size, backend)
        np.save(f"{out}-time-{rank}.npy", np.array([secs, peak_rss_gib()]))
        if rank == 0:
            np.savez(f"{out}-res.npz", **_flat(report, bias))
            s = report.summary()
            np.save(f"{out}-summary.npy", np.array([s["mono"], s["cross"], s["multi"],
                                                    s["rank_distance"]]))  # fmt: skip
    finally:
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n_candidates", type=int, default=1_000_000)
    p.add_argument("--n_queries", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--langs", type=int, default=10)
    p.add_argument("--block_rows", type=int, default=256)
    p.add_argument("--fused_rows", type=int, default=2048, help="questions a fused step")
    p.add_argument("--procs", default="1,2", help="process counts to run (default: 1,2)")
    p.add_argument(
        "--device", default=None, help="'cuda': the GPU runs first (see above; 'cpu' checks it)"
    )
    p.add_argument("--gpu_rows", type=int, default=1024, help="questions a GPU step")
    p.add_argument(
        "--backends",
        default="blocked,fused",
        help="evaluate_sharded backends to run (default: both; fused where the CPU runs it)",
    )
    args = p.parse_args()
    import torch

    from hybridrs import _core

    os.environ.setdefault("RAYON_NUM_THREADS", str(os.cpu_count() or 2))
    backends = [
        x for x in args.backends.split(",") if x != "fused" or _core.fused_kernel() is not None
    ]
    print(
        f"CPU: {cpu_info()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"fused kernel: {_core.fused_kernel()}; backends: {', '.join(backends)}"
    )
    syn = Synthetic(args.n_candidates, args.n_queries, args.dim, args.langs)
    nq, nc = args.n_queries, syn.nc
    full_gib = nq * nc * 4 / 2**30
    print(
        f"{nc:,} candidates x {nq:,} queries, d = {args.dim}, {args.langs} languages; the full "
        f"float32 score matrix would take {full_gib:.1f} GiB"
    )
    if args.device is not None:
        _gpu(args, syn, full_gib)
    procs = [int(x) for x in args.procs.split(",") if x.strip()]
    if not procs:
        return
    # the bare matmul: the same blocks of queries against all candidates, nothing else; numpy's
    # BLAS and torch's, the faster one is the baseline
    qn, cn = syn.queries(), syn.candidates(0, nc)
    buf = np.empty((args.block_rows, nc), dtype=np.float32)
    t_np = _bare_matmul(np.matmul, qn, cn.T, buf)
    t_torch = _bare_matmul(torch.mm, *(torch.from_numpy(x) for x in (qn, cn.T, buf)))
    del cn, buf
    t_mm = min(t_np, t_torch)
    print(
        f"bare matmul, blocks of {args.block_rows} queries x all candidates: numpy {t_np:.1f} s, "
        f"torch {t_torch:.1f} s (baseline: the faster, {t_mm:.1f} s)"
    )
    results: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for backend in backends:
        for size in procs:
            _run(args, backend, size, t_mm, results)
    if len(backends) == 2 and all((b, 1) in results for b in backends):
        a, b = (results[(x, 1)] for x in backends)
        eq = all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
        print(
            f"{backends[0]} and {backends[1]} (1 process) equal bit for bit: {eq} (their scores "
            "are summed in different orders; near-ties may rank differently)"
        )


def _bare_matmul(mm: Any, q: Any, ct: Any, out: Any, sync: Any = None) -> float:
    """Seconds for ``mm(q[a:b], ct, out=...)`` over blocks of ``len(out)`` queries: the scores
    and nothing else. ``sync`` (a GPU's) is called before the clock starts and stops."""
    rows = len(out)
    if sync is not None:
        sync()
    t0 = time.perf_counter()
    for a in range(0, len(q), rows):
        b = min(a + rows, len(q))
        mm(q[a:b], ct, out=out[: b - a])
    if sync is not None:
        sync()
    return time.perf_counter() - t0


def _gpu(args: argparse.Namespace, syn: Synthetic, full_gib: float) -> None:
    """The bare matmul and exact evaluation on ``args.device`` (one process), timed."""
    import torch

    from hybridrs.evaluation import sharded
    from hybridrs.evaluation.sharded import evaluate_sharded

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else f"{dev} (no GPU: a dry run of this part)"
    print(f"GPU: {name}; TF32 matmul: {torch.backends.cuda.matmul.allow_tf32}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    q = torch.from_numpy(syn.queries()).to(dev)
    c = torch.from_numpy(syn.candidates(0, syn.nc)).to(dev)
    rows = args.gpu_rows
    buf = torch.empty((rows, syn.nc), dtype=torch.float32, device=dev)
    _bare_matmul(torch.mm, q, c.T, buf, sync)  # warm-up
    t_mm = min(_bare_matmul(torch.mm, q, c.T, buf, sync) for _ in range(3))
    del buf
    ds = syn.dataset()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times, report = [], None
    # a dry run (no GPU) runs the GPU code (torch) on the CPU
    with sharded._torch_blocks_on_cpu(not cuda):
        for _ in range(2):  # the first run includes warm-up
            sync()
            t0 = time.perf_counter()
            report, _ = evaluate_sharded(ds, q, c, block_rows=rows, backend="blocked", device=dev)
            sync()
            times.append(time.perf_counter() - t0)
    assert report is not None
    s = report.summary()
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else float("nan")
    print(f"GPU bare matmul, blocks of {rows} queries x all candidates: {t_mm:.3f} s (best of 3)")
    print(
        f"GPU exact evaluation (blocked, scored and counted on the GPU, 1 process): "
        f"{min(times):.3f} s = {min(times) / t_mm:.2f}x the bare matmul (runs: "
        f"{', '.join(f'{t:.3f}' for t in times)} s); GPU peak memory {peak:.2f} GiB (embeddings "
        f"{(q.numel() + c.numel()) * 4 / 2**30:.2f} GiB; full score matrix {full_gib:.1f} GiB); "
        f"peak RSS {peak_rss_gib():.2f} GiB"
    )
    print(
        f"GPU: mono {s['mono']:.4f} cross {s['cross']:.4f} multi {s['multi']:.4f} rank distance "
        f"{s['rank_distance']:.1f}"
    )


def _run(
    args: argparse.Namespace,
    backend: str,
    size: int,
    t_mm: float,
    results: dict[tuple[str, int], dict[str, np.ndarray]],
) -> None:
    """One evaluation over ``size`` processes with ``backend``, timed and printed."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/r"
        os.environ["RAYON_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // size))
        mp.spawn(_worker, args=(size, args, backend, f"{tmp}/rdv", out), nprocs=size, join=True)
        times = [np.load(f"{out}-time-{r}.npy") for r in range(size)]
        results[(backend, size)] = dict(np.load(f"{out}-res.npz"))
        m = np.load(f"{out}-summary.npy")
        s1 = dict(zip(["mono", "cross", "multi", "rank_distance"], m.tolist(), strict=False))
    secs = max(t[0] for t in times)
    same = ""
    if (backend, 1) in results and size != 1:
        one, got = results[(backend, 1)], results[(backend, size)]
        eq = all(np.array_equal(one[k], got[k], equal_nan=True) for k in one)
        same = f"; equal to 1 process bit for bit: {eq}"
    if size == 1:
        print(f"{backend}, 1 process: mono {s1['mono']:.4f} cross {s1['cross']:.4f} multi "
              f"{s1['multi']:.4f} rank distance {s1['rank_distance']:.1f}")  # fmt: skip
    print(
        f"{backend}, {size} process(es) (gloo, candidates sharded): exact evaluation "
        f"{secs:.1f} s = {secs / t_mm:.2f}x the bare matmul; peak RSS per process "
        f"{', '.join(f'{t[1]:.2f}' for t in times)} GiB{same}"
    )


if __name__ == "__main__":
    main()
