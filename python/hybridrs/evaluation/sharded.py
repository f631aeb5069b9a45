"""Exact evaluation sharded over processes with ``torch.distributed`` (torchrun, multi-GPU and
multi-node through its rendezvous).

Each rank holds a contiguous shard of the candidates (:func:`shard_range`, whole blocks of
:func:`col_block_for` columns) and all question embeddings. For every block of questions a rank
scores its own columns only (torch, on its device), and:

1. the scores of each question's relevant candidates (the thresholds) are taken by the rank
   that holds them and shared with one all-reduce (every other rank adds 0);
2. the Rust kernel counts, over the rank's columns, how many candidates of each language score
   ``>=`` and ``>`` every threshold (:func:`hybridrs._core.threshold_counts`), plus the ``>=``
   counts of the k-th largest score of the row (from the ranks' local top k, all-gathered) for
   the top-k language make-up (on a GPU, torch makes the same exact comparisons there, so the
   score blocks never leave it);
3. one all-reduce sums the counts: counts of disjoint shards add up to those of the whole row,
   so mAP, recall@k, mAP@k, rank distance and every bias figure follow exactly
   (:func:`hybridrs._core.metrics_from_counts`), with no rank ever holding the score matrix.

Column blocks are fixed globally, so every score is computed by the same matmul call whatever
the number of processes: 1, 2 or 3 processes give the same metrics bit for bit (tested). Without
an initialised process group everything runs in the calling process (world size 1).

On x86-64 CPUs with AVX2 or AVX-512 (float32, scored on the CPU) the ``"fused"`` backend does
steps 1-3 without score blocks: the thresholds are scored by the fused kernel's own FMA chain
(:func:`hybridrs._core.fused_scores_at`, independent of how candidates are split), and one Rust
pass per rank (:class:`hybridrs._core.FusedShard`, its shard packed once) scores the shard tile
by tile, counts each tile while it is in cache and keeps each question's ``k`` largest scores
with their languages and the ties at the ``k``-th; the ranks' lists, all-gathered, give the
top-k cutoffs and their exact per-language counts (a cutoff is never below a rank's ``k``-th).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import _core
from .._checks import as_int
from ..data import RetrievalSet
from .bias import BiasReport
from .report import EvalReport

__all__ = [
    "COL_BLOCK",
    "col_block_for",
    "encode_sharded",
    "evaluate_sharded",
    "gather_rows",
    "init_from_env",
    "shard_range",
    "sorted_relevance",
    "world",
]

#: The most candidate columns scored by one matmul call (about the fastest BLAS shape on CPUs:
#: 256 x 384 x 16384 runs faster than one call over 200k columns); shards are whole blocks.
COL_BLOCK = 16384

# Set by _torch_blocks_on_cpu: the blocked backend's GPU code on the CPU.
_TORCH_BLOCKS_ON_CPU = False


@contextmanager
def _torch_blocks_on_cpu(on: bool = True) -> Iterator[None]:
    """Within it, the blocked backend runs its GPU code (torch.mm blocks, torch.topk,
    thresholds indexed on the device, :func:`_torch_counts`) on the CPU too, where tests and
    dry runs check it against the exact kernel."""
    global _TORCH_BLOCKS_ON_CPU
    before, _TORCH_BLOCKS_ON_CPU = _TORCH_BLOCKS_ON_CPU, on
    try:
        yield
    finally:
        _TORCH_BLOCKS_ON_CPU = before


def col_block_for(n_candidates: int) -> int:
    """The column block of a set of ``n_candidates``: a function of the set alone (so every
    world size cuts the same blocks), at most :data:`COL_BLOCK`, small enough for about 64
    blocks (so that small sets still spread over many ranks), a multiple of 256."""
    per_block = -(-n_candidates // 64)  # ceil(n / 64)
    return int(min(COL_BLOCK, max(256, -(-per_block // 256) * 256)))


def world(group: Any = None) -> tuple[int, int]:
    """``(rank, world_size)`` of the default (or given) process group; ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def init_from_env(device: str | None = None) -> tuple[int, int]:
    """Initialises the default process group from torchrun's environment (``WORLD_SIZE`` > 1):
    NCCL when ``device`` is CUDA (default: CUDA when available), gloo otherwise. Returns
    ``(rank, world_size)``; ``(0, 1)`` outside torchrun."""
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world()


def shard_range(n: int, rank: int, world_size: int, block: int | None = None) -> tuple[int, int]:
    """The candidates ``start, stop`` that ``rank`` of ``world_size`` holds: whole blocks of
    ``block`` columns (default :func:`col_block_for`), as even as blocks allow (a rank may hold
    none)."""
    n = as_int(n, "n_candidates", 0)
    block = col_block_for(n) if block is None else as_int(block, "block", 1)
    world_size = as_int(world_size, "world_size", 1)
    rank = as_int(rank, "rank", 0, world_size - 1)
    nb = -(-n // block)
    a, b = nb * rank // world_size, nb * (rank + 1) // world_size
    return min(a * block, n), min(b * block, n)


def sorted_relevance(ds: RetrievalSet) -> tuple[np.ndarray, np.ndarray]:
    """The relevance CSR of ``ds`` with each question's candidates sorted and without repeats
    (the order the thresholds and counts follow)."""
    indptr = np.asarray(ds.relevance_indptr, dtype=np.int64)
    indices = np.asarray(ds.relevance_indices, dtype=np.int64)
    rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    order = np.lexsort((indices, rows))
    r, c = rows[order], indices[order]
    keep = np.ones(len(r), dtype=bool)
    keep[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    r, c = r[keep], c[keep]
    out = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=len(indptr) - 1), out=out[1:])
    return out, np.ascontiguousarray(c)


def encode_sharded(
    encoder: Any,
    ds: RetrievalSet,
    candidate_texts: Sequence[str],
    progress: bool = False,
    col_block: int | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Encodes ``ds`` across the ranks of the default process group: each rank encodes its
    candidate shard (:func:`shard_range`) and keeps it, and an even share of the questions, all
    gathered so that every rank holds every question. ``encoder`` is a
    :class:`hybridrs.models.Encoder`; ``candidate_texts`` the texts of all candidates
    (:func:`hybridrs.models.candidate_texts`). Returns ``(questions, local candidates, (start,
    stop))``."""

    rank, size = world()
    if len(candidate_texts) != ds.n_candidates:
        raise ValueError(
            f"candidate_texts: has {len(candidate_texts)} texts but the data set has "
            f"{ds.n_candidates} candidates"
        )
    start, stop = shard_range(ds.n_candidates, rank, size, col_block)
    texts = list(candidate_texts[start:stop])
    name = f"{ds.name} " if ds.name else ""
    show = progress and rank == 0
    dim = int(encoder.dim)
    c = (
        encoder.encode(texts, encoder.passage_prefix, show, f"{name}candidates")
        if texts
        else np.zeros((0, dim), dtype=np.float32)
    )
    nq = ds.n_questions
    qa, qb = nq * rank // size, nq * (rank + 1) // size
    qtexts = [x.text for x in ds.questions[qa:qb]]
    q = (
        encoder.encode(qtexts, encoder.query_prefix, show, f"{name}questions")
        if qtexts
        else np.zeros((0, dim), dtype=np.float32)
    )
    if size > 1:
        shares = [nq * (r + 1) // size - nq * r // size for r in range(size)]
        q = _gather(q, shares, to_rank=None)
    return np.ascontiguousarray(q), np.ascontiguousarray(c), (start, stop)


def gather_rows(local: np.ndarray, n: int, to_rank: int = 0) -> np.ndarray | None:
    """The rows of every rank's shard (:func:`shard_range` of ``n``), concatenated on
    ``to_rank`` (``None`` on the others); ``local`` itself without a process group."""
    _, size = world()
    cuts = [shard_range(n, r, size) for r in range(size)]
    return _gather(local, [b - a for a, b in cuts], to_rank)


def _gather(local: np.ndarray, sizes: list[int], to_rank: int | None) -> Any:
    """Every rank's rows (rank ``r`` holds ``sizes[r]``) in rank order: on ``to_rank`` only
    (``None`` on the others), or on every rank when ``to_rank`` is None. One collective over
    rows padded to the largest share."""
    import torch
    import torch.distributed as dist

    rank, size = world()
    if size == 1:
        return local
    dev = _comm_device(None)
    dtype = torch.from_numpy(local[:0]).dtype
    mine = torch.zeros((max(max(sizes), 1), local.shape[1]), dtype=dtype, device=dev)
    mine[: len(local)] = torch.from_numpy(np.ascontiguousarray(local)).to(dev)
    parts: list[Any] | None
    if to_rank is None:
        parts = [torch.empty_like(mine) for _ in range(size)]
        dist.all_gather(parts, mine)
    else:
        parts = [torch.empty_like(mine) for _ in range(size)] if rank == to_rank else None
        dist.gather(mine, parts, dst=to_rank)
    if parts is None:
        return None
    return np.concatenate([p[:k].cpu().numpy() for p, k in zip(parts, sizes, strict=False)])


def _comm_device(group: Any) -> Any:
    """Where collective tensors live: CUDA for NCCL, the CPU otherwise."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def evaluate_sharded(
    dataset: RetrievalSet,
    query_embeddings: Any,
    local_candidates: Any,
    *,
    recall_at: Sequence[int] = (1, 10),
    map_at: int = 10,
    map_norm: str = "R",
    top_k: Sequence[int] = (1, 10),
    block_rows: int | None = None,
    col_block: int | None = None,
    backend: str = "auto",
    device: Any = None,
    group: Any = None,
    keep_per_query: bool = True,
    progress: bool = False,
) -> tuple[EvalReport, BiasReport]:
    """Exact evaluation with the candidates sharded over the ranks of ``group`` (see the module
    docs); call it on every rank. Without a process group it runs in this process alone.

    Args:
        dataset: The retrieval set (all ranks load it; it holds texts and ids, not scores).
        query_embeddings: All questions' embeddings ``(n_questions, d)``, float32 or float64.
        local_candidates: This rank's candidates, rows ``shard_range(n_candidates, rank,
            world_size)`` of the candidate embeddings, same dtype and ``d``.
        recall_at, map_at, map_norm: As :func:`hybridrs.evaluate`.
        top_k: Cutoffs of the bias dashboard's top-k language make-up.
        block_rows: Questions scored per step (default 256 for ``"blocked"``, 2048 for
            ``"fused"``, which packs the shard's candidates once a step).
        col_block: Candidates scored per matmul call (default :func:`col_block_for`); shards
            are whole blocks (the same on every rank and in every run that is compared: the
            result does not depend on the number of ranks).
        backend: ``"fused"``: the Rust fused kernel scores each rank's shard tile by tile and
            counts the tiles while they are in cache (no score block is written out; float32
            on the CPU, x86-64 with AVX2 or AVX-512 and FMA: :func:`hybridrs._core.fused_kernel`);
            ``"blocked"``: a matmul per column block (numpy on the CPU, torch on a GPU), then
            the Rust counting pass over it; ``"auto"``: fused where it runs. Every rank must use
            the same backend; the two compute scores by different summation orders, so their
            metrics can differ in the last bits of tied or near-tied scores.
        device: Torch device of the score blocks (default: the embeddings' device, or CUDA
            under NCCL). On the CPU the Rust kernel counts them; on a GPU torch counts them
            there (exact comparisons: the same counts), and only the counts leave the GPU.
        group: The process group (default: the default group).
        keep_per_query: Keep per-question values in the report.
        progress: A progress bar over question blocks on rank 0.

    Returns:
        ``(EvalReport, BiasReport)``, the same on every rank.

    Raises:
        TypeError / ValueError: bad dtypes or shapes (every rank raises), or non-finite scores.
    """
    import torch
    import torch.distributed as dist

    rank, size = world(group)
    nq, nc = dataset.n_questions, dataset.n_candidates
    col_block = col_block_for(nc) if col_block is None else as_int(col_block, "col_block", 1)
    start, stop = shard_range(nc, rank, size, col_block)
    q = _tensor(query_embeddings, "query_embeddings")
    c = _tensor(local_candidates, "local_candidates")
    if q.shape[0] != nq:
        raise ValueError(
            f"query_embeddings: has {q.shape[0]} rows but the data set has {nq} questions"
        )
    if c.shape[0] != stop - start:
        raise ValueError(
            f"local_candidates: has {c.shape[0]} rows but rank {rank} of {size} holds "
            f"candidates {start}..{stop} ({stop - start} rows; see shard_range)"
        )
    if c.shape[1] != q.shape[1]:
        raise ValueError(
            f"local_candidates: dimension {c.shape[1]} differs from query_embeddings' {q.shape[1]}"
        )
    if c.dtype != q.dtype:
        raise TypeError(
            f"local_candidates: dtype {c.dtype} differs from query_embeddings' {q.dtype}"
        )
    recall_at = [as_int(k, "recall_at", 1, (1 << 32) - 1) for k in recall_at]
    top_k = [as_int(k, "top_k", 1, (1 << 32) - 1) for k in top_k]
    map_at = as_int(map_at, "map_at", 1, (1 << 32) - 1)
    comm = _comm_device(group)
    dev = (
        torch.device(device) if device is not None else (comm if comm.type == "cuda" else q.device)
    )
    fused = _fused_backend(backend, dev.type == "cpu" and q.dtype == torch.float32)
    block_rows = as_int(
        block_rows if block_rows is not None else (2048 if fused else 256), "block_rows", 1
    )
    q, c = q.to(dev), c.to(dev)
    # numpy blocks and Rust top-k on the CPU; torch's (the GPU code) elsewhere, or where a test
    # asks for them on the CPU (_TORCH_BLOCKS_ON_CPU)
    on_cpu = dev.type == "cpu" and not _TORCH_BLOCKS_ON_CPU
    q_np: Any = q.numpy() if dev.type == "cpu" else None
    c_np: Any = c.numpy() if dev.type == "cpu" else None
    np_dtype = np.float32 if q.dtype == torch.float32 else np.float64
    n_l = len(dataset.languages)
    offsets = np.asarray(dataset.lang_offsets, dtype=np.int64)
    indptr, indices = sorted_relevance(dataset)
    n_local = stop - start
    kmax = min(max(top_k, default=1), nc)
    k_eff = np.minimum(np.asarray(top_k, dtype=np.int64), nc)
    bad = torch.tensor([0.0 if _finite_scores(q, c) else 1.0], device=comm)
    if size > 1:
        dist.all_reduce(bad, group=group)
    if float(bad[0]) != 0.0:
        raise ValueError(
            "scores: embeddings with NaN or infinite values (or so large that their dot "
            "products overflow) on some rank: every score must be finite"
        )
    # the fused backend's candidate panels, packed once (an empty shard counts nothing)
    panels = _core.FusedShard(c_np, np.clip(offsets, start, stop) - start) if fused else None
    parts: list[dict[str, np.ndarray]] = []
    bias_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    starts: Any = range(0, nq, block_rows)
    if progress and rank == 0:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="scoring (sharded)", unit="block")
    for a in starts:
        b = min(a + block_rows, nq)
        n = b - a
        thr_np: Any
        if fused:
            thr_np, ge_s, gt_s, ge_tops = _fused_step(
                q_np,
                c_np,
                panels,
                a,
                b,
                indptr,
                indices,
                n_l,
                (start, stop),
                kmax,
                k_eff,
                comm,
                group,
            )
        else:
            # the shard's scores as contiguous column blocks, each one matmul call of a fixed
            # global shape (never copied into one wide matrix)
            if on_cpu:  # numpy's BLAS: faster than torch's on some CPUs (1.5x on AMD EPYC)
                blocks = [
                    torch.from_numpy(q_np[a:b] @ c_np[cs : min(cs + col_block, n_local)].T)
                    for cs in range(0, n_local, col_block)
                ]
            else:
                blocks = [
                    torch.mm(q[a:b], c[cs : min(cs + col_block, n_local)].T)
                    for cs in range(0, n_local, col_block)
                ]
            # 1. thresholds: taken by the rank that holds the candidate, shared in one all-reduce
            ia, ib, rows, cols, own = _relevant_pairs(indptr, indices, a, b, start, stop)
            thr = torch.zeros(ib - ia, dtype=q.dtype, device=dev)
            if own.size:
                local = cols[own] - start
                which = local // col_block
                for j in np.unique(which):
                    sel = own[which == j]
                    thr[torch.from_numpy(sel).to(dev)] = blocks[j][
                        torch.from_numpy(rows[sel]).to(dev),
                        torch.from_numpy(cols[sel] - start - j * col_block).to(dev),
                    ]
            thr = thr.to(comm)
            # 2. the local top k of each row, gathered
            top = torch.full((n, kmax), -torch.inf, dtype=q.dtype, device=dev)
            if n_local:
                if on_cpu:  # one pass per row in Rust (torch.topk costs several)
                    heads = [
                        torch.from_numpy(_core.row_top_values(x.numpy(), a, kmax).reshape(n, kmax))
                        for x in blocks
                    ]
                else:
                    heads = [torch.topk(x, min(kmax, x.shape[1]), dim=1).values for x in blocks]
                joined = torch.cat(heads, dim=1)
                top[:, : min(kmax, n_local)] = torch.topk(joined, min(kmax, n_local), dim=1).values
            top = top.to(comm)
            if size > 1:
                dist.all_reduce(thr, group=group)
                gathered = [torch.empty_like(top) for _ in range(size)]
                dist.all_gather(gathered, top, group=group)
                top = torch.cat(gathered, dim=1)
            thr_np = np.ascontiguousarray(thr.cpu().numpy(), dtype=np_dtype)
            merged = torch.topk(top, kmax, dim=1).values.cpu().numpy()
            top_thr: Any = np.ascontiguousarray(merged[:, k_eff - 1].reshape(-1), dtype=np_dtype)
            # one threshold list per row: its relevant candidates' scores, then the top-k cutoffs
            # (one counting pass; a cutoff equal to a relevant score is counted once)
            n_top = len(top_k)
            r = np.diff(indptr[a : b + 1])
            both_ptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(r + n_top, out=both_ptr[1:])
            rel_pos = both_ptr[rows] + (np.arange(ib - ia) - (indptr[a:b] - ia)[rows])
            top_pos = ((both_ptr[:-1] + r)[:, None] + np.arange(n_top)[None, :]).reshape(-1)
            both_thr: Any = np.empty(int(both_ptr[-1]), dtype=np_dtype)
            both_thr[rel_pos] = thr_np
            both_thr[top_pos] = top_thr
            # counts of the column blocks add up like those of the shards
            col_starts = [start + j * col_block for j in range(len(blocks))]
            if on_cpu:  # the Rust kernel
                ge = np.zeros((len(both_thr), n_l), dtype=np.int64)
                gt = np.zeros_like(ge)
                for x, cs in zip(blocks, col_starts, strict=True):
                    off = np.clip(offsets, cs, cs + x.shape[1]) - cs
                    g, t = _core.threshold_counts(x.numpy(), a, off, both_ptr, both_thr)
                    ge += g.reshape(-1, n_l)
                    gt += t.reshape(-1, n_l)
            else:  # on the blocks' device: only the counts leave it
                ge, gt = _torch_counts(blocks, col_starts, offsets, both_ptr, both_thr)
            ge_r, gt_r = ge[rel_pos].reshape(-1), gt[rel_pos].reshape(-1)
            ge_t = ge[top_pos].reshape(-1)
            del blocks
            # 3. one all-reduce of the counts
            packed = torch.from_numpy(np.concatenate([ge_r, gt_r, ge_t]))
            if size > 1:
                packed = packed.to(comm)
                dist.all_reduce(packed, group=group)
            counts = packed.cpu().numpy().astype(np.uint32)
            m = len(ge_r)
            ge_s, gt_s, ge_tops = counts[:m], counts[m : 2 * m], counts[2 * m :]
        parts.append(
            _core.metrics_from_counts(
                thr_np, ge_s, gt_s, a, n, indptr, indices, offsets, recall_at, map_at, map_norm
            )
        )
        b_counts = _core.bias_from_counts(
            gt_s, ge_tops, a, n, indptr, indices, offsets, list(top_k)
        )
        bias_parts.append((b_counts["max_rank"], b_counts["lang_min_rank"], b_counts["top_counts"]))
    per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    agg = _core.aggregate(per, dataset.question_lang, n_l, len(recall_at))
    report = EvalReport(
        dataset.languages,
        agg,
        recall_at=recall_at,
        map_at=map_at,
        map_norm=map_norm,
        per_query=per if keep_per_query else None,
        name=dataset.name,
    )
    max_rank, lang_min, top_counts = (np.concatenate(x) for x in zip(*bias_parts, strict=False))
    return report, BiasReport(dataset, top_k, max_rank, lang_min, top_counts)


def _fused_backend(backend: str, cpu_f32: bool) -> bool:
    """Whether :func:`evaluate_sharded` runs the fused kernel (``backend`` checked)."""
    if backend not in ("auto", "fused", "blocked"):
        raise ValueError(f"backend: expected 'auto', 'fused' or 'blocked', got {backend!r}")
    runs = _core.fused_kernel() is not None
    if backend == "fused" and not (cpu_f32 and runs):
        why = (
            "float32 embeddings scored on the CPU"
            if not cpu_f32
            else "an x86-64 CPU with AVX2 (or AVX-512) and FMA (HYBRIDRS_SIMD may cap it)"
        )
        raise ValueError(f"backend: 'fused' needs {why}; use 'blocked' or 'auto'")
    return backend != "blocked" and cpu_f32 and runs


def _fused_step(
    q: np.ndarray,
    c: np.ndarray,
    panels: Any,
    a: int,
    b: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    n_l: int,
    shard: tuple[int, int],
    kmax: int,
    k_eff: np.ndarray,
    comm: Any,
    group: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of the fused backend for questions ``a..b``: the thresholds (each scored by the
    rank that holds the candidate, one all-reduce), the rank's counts and largest scores in one
    Rust pass over its shard (``panels``: its :class:`hybridrs._core.FusedShard`),
    the counts summed (one all-reduce) and the ranks' largest scores merged (one all-gather)
    into the top-k cutoffs' per-language ``>=`` counts. Returns ``(thresholds, ge, gt, ge of
    the cutoffs)`` as :func:`hybridrs._core.metrics_from_counts` and
    :func:`hybridrs._core.bias_from_counts` take them."""
    import torch
    import torch.distributed as dist

    _, size = world(group)
    start, stop = shard
    n = b - a
    ia, ib, rows, cols, own = _relevant_pairs(indptr, indices, a, b, start, stop)
    thr = np.zeros(ib - ia, dtype=np.float32)
    if own.size:
        thr[own] = _core.fused_scores_at(q[a:b], c, rows[own], cols[own] - start)
    if size > 1:  # x + 0 + ... + 0 == x: every rank ends with the holder's score
        t = torch.from_numpy(thr).to(comm)
        dist.all_reduce(t, group=group)
        thr = np.ascontiguousarray(t.cpu().numpy())
    ptr = np.ascontiguousarray(indptr[a : b + 1] - ia)
    ge, gt, top, top_lang, ties = panels.counts(q[a:b], a, ptr, thr, kmax)
    counts = torch.from_numpy(np.concatenate([ge, gt]).astype(np.int64))
    listed = torch.from_numpy(
        np.concatenate([top_lang, ties]).astype(np.int64)
    )  # languages, then tie counts
    vals = torch.from_numpy(top)
    if size > 1:
        counts, vals, listed = counts.to(comm), vals.to(comm), listed.to(comm)
        dist.all_reduce(counts, group=group)
        gv = [torch.empty_like(vals) for _ in range(size)]
        dist.all_gather(gv, vals, group=group)
        gl = [torch.empty_like(listed) for _ in range(size)]
        dist.all_gather(gl, listed, group=group)
        vals_all = np.stack([x.cpu().numpy() for x in gv]).reshape(size, n, kmax)
        lists = np.stack([x.cpu().numpy() for x in gl])
    else:
        vals_all = top.reshape(1, n, kmax)
        lists = listed.numpy()[None, :]
    langs_all = lists[:, : n * kmax].reshape(size, n, kmax)
    ties_all = lists[:, n * kmax :].reshape(size, n, n_l)
    both = counts.cpu().numpy().astype(np.uint32)
    m = len(ge)
    return thr, both[:m], both[m:], _cutoff_counts(vals_all, langs_all, ties_all, k_eff)


def _torch_counts(
    blocks: list[Any],
    col_starts: list[int],
    offsets: np.ndarray,
    thr_indptr: np.ndarray,
    thresholds: np.ndarray,
    slots: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`hybridrs._core.threshold_counts` gives summed over the column ``blocks``
    (torch tensors of one block of rows, block ``j`` starting at candidate ``col_starts[j]``),
    counted by torch on the blocks' device (a GPU: the score blocks never leave it). Row ``i``'s
    thresholds are ``thresholds[thr_indptr[i]:thr_indptr[i + 1]]``; returns ``(ge, gt)``, each
    ``(len(thresholds), n_languages)`` int64: per threshold and language, how many scores are
    ``>=`` / ``>`` it. The comparisons are exact, so the counts equal the Rust kernel's on the
    same scores. ``slots`` thresholds of every row are compared at a time."""
    import torch

    n_l = len(offsets) - 1
    if not blocks:  # a rank without candidates counts nothing
        zeros = np.zeros((len(thresholds), n_l), dtype=np.int64)
        return zeros, zeros.copy()
    dev, dtype = blocks[0].device, blocks[0].dtype
    n = len(thr_indptr) - 1
    per_row = np.diff(thr_indptr)
    width = int(per_row.max(initial=0))
    row = torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), per_row)).to(dev)
    slot = torch.from_numpy(
        np.arange(len(thresholds), dtype=np.int64) - np.repeat(thr_indptr[:-1], per_row)
    ).to(dev)
    # every row's thresholds in one padded matrix; +inf pads (no finite score reaches it)
    dense = torch.full((n, width), torch.inf, dtype=dtype, device=dev)
    dense[row, slot] = torch.from_numpy(thresholds).to(device=dev, dtype=dtype)
    ge = torch.zeros((n, width, n_l), dtype=torch.int64, device=dev)
    gt = torch.zeros_like(ge)
    for x, cs in zip(blocks, col_starts, strict=True):
        cuts = np.clip(offsets - cs, 0, x.shape[1])
        for lang in range(n_l):
            lo, hi = int(cuts[lang]), int(cuts[lang + 1])
            if hi <= lo:
                continue
            seg = x[:, None, lo:hi]
            for s0 in range(0, width, slots):
                t = dense[:, s0 : s0 + slots, None]
                ge[:, s0 : s0 + slots, lang] += (seg >= t).sum(dim=2)
                gt[:, s0 : s0 + slots, lang] += (seg > t).sum(dim=2)
    return ge[row, slot].cpu().numpy(), gt[row, slot].cpu().numpy()


def _relevant_pairs(
    indptr: np.ndarray, indices: np.ndarray, a: int, b: int, start: int, stop: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The relevant pairs of questions ``a..b``: ``(ia, ib, rows, cols, own)`` with the pairs
    ``indices[ia:ib]``, each pair's row within the block and candidate, and the positions of
    the pairs whose candidate this rank holds (``start..stop``)."""
    ia, ib = int(indptr[a]), int(indptr[b])
    cols = indices[ia:ib]
    rows = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(indptr[a : b + 1]))
    own = np.flatnonzero((cols >= start) & (cols < stop))
    return ia, ib, rows, cols, own


def _cutoff_counts(
    vals: np.ndarray, langs: np.ndarray, ties: np.ndarray, k_eff: np.ndarray
) -> np.ndarray:
    """Per question, top-k cutoff and language, how many candidates score ``>=`` the row's
    ``k``-th largest score, from every rank's list of its ``kmax`` largest (``vals``/``langs``,
    ``ranks x n x kmax``) and tie counts at its ``kmax``-th (``ties``, ``ranks x n x L``): the
    listed scores at or above the cutoff, plus a rank's ties where its ``kmax``-th equals the
    cutoff (the cutoff is never below a rank's ``kmax``-th). ``(n * len(k_eff) * L,)``."""
    size, n, kmax = vals.shape
    n_l = ties.shape[2]
    merged = -np.sort(-vals.transpose(1, 0, 2).reshape(n, size * kmax), axis=1)
    out = np.zeros((n, len(k_eff), n_l), dtype=np.uint32)
    row = np.broadcast_to(np.arange(n)[None, :, None], vals.shape)
    for j, k in enumerate(k_eff):
        cut = merged[:, k - 1]
        hit = vals >= cut[None, :, None]
        out[:, j, :] = np.bincount((row[hit] * n_l + langs[hit]), minlength=n * n_l).reshape(n, n_l)
        at_cut = vals[:, :, kmax - 1] == cut[None, :]  # ranks x n
        out[:, j, :] += (ties * at_cut[:, :, None]).sum(axis=0).astype(np.uint32)
    return out.reshape(-1)


def _finite_scores(q: Any, c: Any) -> bool:
    """Whether every dot product of rows of ``q`` and ``c`` is finite: both finite, and
    ``d * max|q| * max|c|`` below the dtype's largest value (checked once, not per score)."""
    import torch

    if q.numel() == 0 or c.numel() == 0:
        return True

    def largest(x: Any) -> float:  # NaN and infinities propagate
        lo, hi = torch.aminmax(x)
        return max(-float(lo), float(hi))

    bound = q.shape[1] * largest(q) * largest(c)
    return bound < float(torch.finfo(q.dtype).max) / 2  # False for NaN and inf


def _tensor(x: Any, field: str) -> Any:
    import torch

    if isinstance(x, np.ndarray):
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{field}: dtype must be float32 or float64, got {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{field}: expected a numpy array or a torch tensor, got {type(x).__name__}"
        )
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{field}: dtype must be float32 or float64, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{field}: expected a 2-d array, got shape {tuple(x.shape)}")
    return x.contiguous()
