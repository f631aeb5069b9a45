"""Sharded exact evaluation (torch.distributed, gloo on CPU): 2 and 3 processes give the
single-process result bit for bit, and equal the full-matrix kernel where the scores are exact."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import hybridrs
from hybridrs.evaluation import evaluate, sharded
from hybridrs.evaluation.bias import bias_report
from hybridrs.evaluation.sharded import evaluate_sharded, shard_range, sorted_relevance

from .conftest import XQUAD

torch = pytest.importorskip("torch")

LANGS = ["ar", "de", "el"]
COL_BLOCK = 256  # small blocks, so that 2 and 3 ranks hold uneven shards
# the fused kernel where this CPU runs it (test_simd forces the other levels); "torch": the
# blocked backend's GPU code (torch.mm blocks, torch.topk), run on the CPU
BACKENDS = ["blocked", "torch"] + (["fused"] if hybridrs._core.fused_kernel() else [])


def _dataset() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(XQUAD, languages=LANGS)


def _embeddings(ds: hybridrs.RetrievalSet, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    d = 16
    if exact:  # multiples of 1/4 in [-0.75, 0.75]: every dot product is exact in float32
        q = rng.integers(-3, 4, (ds.n_questions, d)) / 4
        c = rng.integers(-3, 4, (ds.n_candidates, d)) / 4
    else:
        q = rng.standard_normal((ds.n_questions, d))
        c = rng.standard_normal((ds.n_candidates, d))
    return q.astype(np.float32), c.astype(np.float32)


def _flat(report, bias) -> dict[str, np.ndarray]:
    out = {f"m_{k}": v for k, v in report.per_query.items()}
    out["max_rank"] = bias.max_rank
    out["lang_min_rank"] = bias.lang_min_rank
    out["top_counts"] = bias.top_counts
    return out


def _run(ds, q, c, rank: int, size: int, backend: str = "blocked"):
    a, b = shard_range(ds.n_candidates, rank, size, COL_BLOCK)
    with sharded._torch_blocks_on_cpu(backend == "torch"):
        return evaluate_sharded(
            ds,
            q,
            c[a:b],
            recall_at=(1, 5, 10),
            top_k=(1, 10),
            block_rows=500,
            col_block=COL_BLOCK,
            backend="blocked" if backend == "torch" else backend,
        )


def _worker(rank: int, size: int, rdv: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=size)
    try:
        ds = _dataset()
        for exact in (True, False):
            q, c = _embeddings(ds, exact)
            for backend in BACKENDS:
                report, bias = _run(ds, q, c, rank, size, backend)
                if rank == size - 1:  # any rank holds the whole result
                    np.savez(f"{out}-{exact}-{backend}.npz", **_flat(report, bias))
    finally:
        dist.destroy_process_group()


def _assert_bits_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape, k
        if x.dtype.kind == "f":
            bits = np.uint64 if x.itemsize == 8 else np.uint32
            assert np.array_equal(x.view(bits), y.view(bits)), k
        else:
            assert np.array_equal(x, y), k


def test_sorted_relevance_is_the_sorted_unique_csr() -> None:
    ds = _dataset()
    indptr, indices = sorted_relevance(ds)
    for i in range(0, ds.n_questions, 97):
        a, b = ds.relevance_indptr[i], ds.relevance_indptr[i + 1]
        want = np.unique(ds.relevance_indices[a:b])
        assert np.array_equal(indices[indptr[i] : indptr[i + 1]], want)


def test_shard_ranges_tile_the_candidates() -> None:
    for n, size in [(0, 2), (5, 3), (1000, 3), (4097, 2), (100, 7)]:
        cuts = [shard_range(n, r, size, 64) for r in range(size)]
        assert cuts[0][0] == 0 and cuts[-1][1] == n
        assert all(cuts[r][1] == cuts[r + 1][0] for r in range(size - 1))
        assert all(a % 64 == 0 or a == n for a, _ in cuts)
    with pytest.raises(ValueError, match="rank"):
        shard_range(10, 2, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_process_equals_the_full_matrix_kernel_on_exact_scores(backend: str) -> None:
    ds = _dataset()
    q, c = _embeddings(ds, exact=True)
    report, bias = _run(ds, q, c, 0, 1, backend)
    scores = q @ c.T
    ref = evaluate(ds, scores, recall_at=(1, 5, 10))
    ref_bias = bias_report(ds, scores, top_k=(1, 10))
    _assert_bits_equal(_flat(report, bias), _flat(ref, ref_bias))
    assert report.summary() == ref.summary()
    assert bias.summary() == ref_bias.summary()


@pytest.mark.skipif("fused" not in BACKENDS, reason="needs the fused kernel (AVX2/AVX-512, FMA)")
def test_fused_backend_equals_the_full_matrix_kernel_on_its_own_scores() -> None:
    # Random (inexact) scores with exact ties at the top of many rows (candidates repeated
    # across languages): the fused kernel's own scores, written out by fused_scores_at, through
    # the full-matrix kernel and the bias report give the fused backend's result bit for bit
    # (2 and 3 processes equal 1 process: the test below).
    ds = _dataset()
    q, c = _embeddings(ds, exact=False)
    c[1::7] = c[0]  # exact ties at the top of many rows, across languages
    rows = np.repeat(np.arange(ds.n_questions, dtype=np.int64), ds.n_candidates)
    cols = np.tile(np.arange(ds.n_candidates, dtype=np.int64), ds.n_questions)
    scores = hybridrs._core.fused_scores_at(q, c, rows, cols).reshape(ds.n_questions, -1)
    ref = evaluate(ds, scores, recall_at=(1, 5, 10))
    ref_bias = bias_report(ds, scores, top_k=(1, 10))
    report, bias = _run(ds, q, c, 0, 1, "fused")
    _assert_bits_equal(_flat(report, bias), _flat(ref, ref_bias))
    # and the single-process fused path (evaluate from embeddings) agrees
    emb = evaluate(ds, q, c, recall_at=(1, 5, 10), backend="fused")
    _assert_bits_equal(report.per_query, emb.per_query)


@pytest.mark.parametrize("size", [2, 3])
def test_sharded_over_processes_equals_one_process_bit_for_bit(tmp_path: Path, size: int) -> None:
    import torch.multiprocessing as mp

    out = str(tmp_path / "res")
    mp.spawn(_worker, args=(size, str(tmp_path / "rdv"), out), nprocs=size, join=True)
    ds = _dataset()
    for exact in (True, False):
        q, c = _embeddings(ds, exact)
        for backend in BACKENDS:
            report, bias = _run(ds, q, c, 0, 1, backend)
            got = dict(np.load(f"{out}-{exact}-{backend}.npz"))
            _assert_bits_equal(got, _flat(report, bias))


def test_bad_inputs_name_the_field() -> None:
    ds = _dataset()
    q, c = _embeddings(ds, exact=True)
    with pytest.raises(ValueError, match="local_candidates"):
        evaluate_sharded(ds, q, c[:10])
    with pytest.raises(ValueError, match="query_embeddings"):
        evaluate_sharded(ds, q[:5], c)
    with pytest.raises(TypeError, match="local_candidates"):
        evaluate_sharded(ds, q, c.astype(np.float64))
    with pytest.raises(TypeError, match="query_embeddings"):
        evaluate_sharded(ds, q.astype(np.int32), c)
    bad = q.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate_sharded(ds, bad, c)
    with pytest.raises(ValueError, match="backend"):
        evaluate_sharded(ds, q, c, backend="gpu")
    with pytest.raises(ValueError, match="backend: 'fused' needs float32"):
        evaluate_sharded(ds, q.astype(np.float64), c.astype(np.float64), backend="fused")


def test_hybridrs_eval_under_torchrun(tmp_path: Path, tiny_model: Path) -> None:
    """``torchrun --nproc_per_node 2 -m hybridrs.cli.eval`` gives the one-process figures (the
    two runs encode in different batches, so embeddings may differ in the last bit)."""
    import json
    import os
    import subprocess
    import sys

    common = [
        "--data", str(XQUAD), "--languages", "de", "el", "--encoder", str(tiny_model),
        "--max_length", "32", "--no_progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "hybridrs.cli.eval", *common, "--output_dir", str(tmp_path / "1")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    two = subprocess.run(
        [*torchrun, "--nproc_per_node", "2", "-m", "hybridrs.cli.eval", *common,
         "--output_dir", str(tmp_path / "2")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert "sharded evaluation over 2 processes" in two.stdout
    a = json.loads((tmp_path / "1" / "xquad-r.json").read_text())
    b = json.loads((tmp_path / "2" / "xquad-r.json").read_text())
    for key in ("mono", "cross", "multi", "rank_distance"):
        assert b["summary"][key] == pytest.approx(a["summary"][key], rel=1e-4), key
    ba = json.loads((tmp_path / "1" / "xquad-r-bias.json").read_text())
    bb = json.loads((tmp_path / "2" / "xquad-r-bias.json").read_text())
    assert bb["summary"]["max@R"] == pytest.approx(ba["summary"]["max@R"], rel=1e-3)
    bad = subprocess.run(
        [*torchrun, "--nproc_per_node", "2", "-m", "hybridrs.cli.eval", "--data", str(XQUAD),
         "--encoder", "tfidf", "--output_dir", str(tmp_path / "3")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "needs a neural encoder" in bad.stderr


def test_trainer_evaluation_is_sharded_under_torchrun(
    tmp_path: Path, tiny_model: Path, small_train: Path
) -> None:
    """Under torchrun the trainer's evaluation runs on both ranks (candidates sharded); its
    figures are those of the saved model evaluated in one process."""
    import json
    import os
    import subprocess
    import sys

    from hybridrs.data import eval_subset
    from hybridrs.models import Encoder

    out = tmp_path / "two"
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "29533", "-m", "hybridrs.cli.train", "--model", str(tiny_model),
        "--train_data", str(small_train), "--output_dir", str(out),
        "--per_device_train_batch_size", "4", "--max_steps", "2", "--skip_eval_before",
        "--no_progress", "--dataloader_num_workers", "0", "--eval_data", str(XQUAD),
        "--eval_languages", "de", "el", "--eval_articles", "0,1", "--eval_max_length", "32",
    ]  # fmt: skip
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((out / "report.json").read_text())["after"]["xquad-r"]
    ds = eval_subset(hybridrs.load_lareqa(XQUAD), ["de", "el"], "0,1", 0, True)
    assert after["n_questions"] == ds.n_questions
    enc = Encoder.load(out / "model", max_length=32)
    q, c = enc.embed(ds, progress=False)
    ref = evaluate(ds, q, c).summary()
    for key in ("mono", "cross", "multi", "rank_distance"):
        assert after["summary"][key] == pytest.approx(ref[key], rel=1e-4), key
    assert after["retrieval"]["method"] in ("exact", "hnsw")


@pytest.mark.skipif("fused" not in BACKENDS, reason="needs the fused kernel (AVX2/AVX-512, FMA)")
def test_fused_shard_functions_name_the_bad_field() -> None:
    core = hybridrs._core
    rng = np.random.default_rng(3)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    c = rng.standard_normal((10, 8)).astype(np.float32)
    off = np.array([0, 6, 10], dtype=np.int64)
    ptr = np.array([0, 1, 1, 2, 2], dtype=np.int64)
    thr = np.array([0.1, -0.2], dtype=np.float32)
    shard = core.FusedShard(c, off)
    ge, gt, top, top_lang, ties = shard.counts(q, 0, ptr, thr, 3)
    assert ge.shape == gt.shape == (2 * 2,) and top.shape == top_lang.shape == (4 * 3,)
    assert ties.shape == (4 * 2,)
    scores = q @ c.T  # the top values are the rows' largest, up to rounding
    assert np.allclose(top.reshape(4, 3), -np.sort(-scores, axis=1)[:, :3], atol=1e-5)
    empty = core.FusedShard(c[:0], np.zeros(3, dtype=np.int64)).counts(q, 0, ptr, thr, 2)
    assert not empty[0].any() and np.all(np.isneginf(empty[2]))
    cases = [
        (lambda: shard.counts(q, 0, ptr[:-1], thr, 3), ValueError, "thr_indptr"),
        (lambda: shard.counts(q, 0, ptr, thr, 0), ValueError, "k"),
        (lambda: shard.counts(q, 0, ptr, thr * np.nan, 3), ValueError, "thresholds"),
        (lambda: shard.counts(q[:, :5], 0, ptr, thr, 3), ValueError, "query_embeddings"),
        (lambda: shard.counts(q.astype(np.float64), 0, ptr, thr, 3), TypeError, "query_emb"),
        (lambda: core.FusedShard(c[:9], off), ValueError, "candidate_embeddings"),
        (lambda: core.FusedShard(c, off[::-1].copy()), ValueError, "lang_offsets"),
        (lambda: core.FusedShard(c.astype(np.float64), off), TypeError, "candidate_embeddings"),
        (lambda: core.fused_scores_at(q, c, np.array([0]), np.array([10])), ValueError, "cols"),
        (lambda: core.fused_scores_at(q, c, np.array([4]), np.array([0])), ValueError, "rows"),
        (lambda: core.fused_scores_at(q, c, np.array([0, 1]), np.array([0])), ValueError, "cols"),
        (
            lambda: core.fused_scores_at(q, c[:, :5], np.array([0]), np.array([0])),
            ValueError,
            "dim",
        ),
    ]
    for call, exc, field in cases:
        with pytest.raises(exc, match=field):
            call()


@pytest.mark.parametrize("slots", [1, 2, 16])
def test_torch_counts_equal_the_rust_kernel(slots: int) -> None:
    """The GPU counting (torch, run here on the CPU) gives threshold_counts' counts, summed over
    column blocks that cut languages anywhere, with ties and rows of 0 to 7 thresholds."""
    rng = np.random.default_rng(11)
    n, nc = 9, 70
    scores = rng.integers(-4, 5, (n, nc)).astype(np.float32) / 2  # many exact ties
    offsets = np.array([0, 13, 13, 40, 70], dtype=np.int64)  # an empty language too
    per_row = rng.integers(0, 8, n)
    indptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
    thr = rng.integers(-5, 6, int(indptr[-1])).astype(np.float32) / 2
    ge_ref, gt_ref = hybridrs._core.threshold_counts(scores, 0, offsets, indptr, thr)
    cuts = [0, 10, 32, 33, 70]
    blocks = [torch.from_numpy(scores[:, a:b].copy()) for a, b in itertools.pairwise(cuts)]
    ge, gt = sharded._torch_counts(blocks, cuts[:-1], offsets, indptr, thr, slots=slots)
    assert np.array_equal(ge.reshape(-1), ge_ref.astype(np.int64))
    assert np.array_equal(gt.reshape(-1), gt_ref.astype(np.int64))
    empty = sharded._torch_counts([], [], offsets, indptr, thr)
    assert empty[0].shape == (len(thr), 4) and not empty[0].any() and not empty[1].any()
