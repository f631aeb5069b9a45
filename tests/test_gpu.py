"""The GPU paths: score blocks scored and counted on the device, encoding and training steps on
it. ``benches/gpu_checks.sh`` runs this file on a machine with a CUDA GPU; elsewhere it is
skipped. ``HYBRIDRS_TEST_DEVICE`` names the device (default ``cuda``); ``cpu`` runs the same
checks on the CPU (how the file itself is checked where there is no GPU)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import hybridrs  # noqa: E402
from hybridrs.evaluation import evaluate  # noqa: E402
from hybridrs.evaluation.bias import bias_report  # noqa: E402
from hybridrs.evaluation.sharded import evaluate_sharded  # noqa: E402

from .conftest import XQUAD  # noqa: E402

DEVICE = os.environ.get("HYBRIDRS_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA GPU"
    ),
]
LANGS = ["de", "el", "en"]  # the XQuAD-R files benches/gpu_checks.sh carries


def _dataset() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(XQUAD, languages=LANGS)


def _embeddings(ds: hybridrs.RetrievalSet, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    if exact:  # multiples of 1/4 in [-0.75, 0.75]: every dot product is exact (TF32 too)
        q = rng.integers(-3, 4, (ds.n_questions, 16)) / 4
        c = rng.integers(-3, 4, (ds.n_candidates, 16)) / 4
    else:
        q = rng.standard_normal((ds.n_questions, 64))
        c = rng.standard_normal((ds.n_candidates, 64))
    return q.astype(np.float32), c.astype(np.float32)


def test_device_score_blocks_equal_the_full_matrix_kernel_on_exact_scores() -> None:
    ds = _dataset()
    q, c = _embeddings(ds, exact=True)
    report, bias = evaluate_sharded(
        ds, q, c, recall_at=(1, 5, 10), top_k=(1, 10), block_rows=700, col_block=512,
        backend="blocked", device=DEVICE,
    )  # fmt: skip
    scores = q @ c.T
    ref = evaluate(ds, scores, recall_at=(1, 5, 10))
    ref_bias = bias_report(ds, scores, top_k=(1, 10))
    for k, v in ref.per_query.items():
        assert np.array_equal(report.per_query[k], v), k
    assert np.array_equal(bias.max_rank, ref_bias.max_rank)
    assert np.array_equal(bias.lang_min_rank, ref_bias.lang_min_rank)
    assert np.array_equal(bias.top_counts, ref_bias.top_counts)
    assert report.summary() == ref.summary()


def test_device_evaluation_of_random_embeddings_matches_the_cpu() -> None:
    # other summation orders on the device: near-ties may rank differently, summaries agree
    ds = _dataset()
    q, c = _embeddings(ds, exact=False)
    on_dev, bias_dev = evaluate_sharded(ds, q, c, backend="blocked", device=DEVICE)
    on_cpu, bias_cpu = evaluate_sharded(ds, q, c, backend="blocked", device="cpu")
    a, b = on_dev.summary(), on_cpu.summary()
    for key in ("mono", "cross", "multi", "rank_distance"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert bias_dev.summary()["max@R"] == pytest.approx(bias_cpu.summary()["max@R"], rel=1e-3)


def test_encoder_on_the_device_matches_the_cpu(tiny_model: Path) -> None:
    from hybridrs.models import Encoder

    ds = _dataset().subset(articles=[0])
    dev = Encoder.load(tiny_model, max_length=32, device=DEVICE).embed(ds, progress=False)
    cpu = Encoder.load(tiny_model, max_length=32, device="cpu").embed(ds, progress=False)
    for x, y in zip(dev, cpu, strict=True):
        assert x.shape == y.shape and x.dtype == np.float32
        assert np.abs(x - y).max() < 1e-3


def test_training_steps_on_the_device(tiny_model: Path, small_train: Path, tmp_path: Path) -> None:
    from hybridrs.train import TrainConfig, train

    out = tmp_path / "o"
    cfg = TrainConfig(
        model=str(tiny_model), train_data=str(small_train), eval_data=[str(XQUAD)],
        output_dir=str(out), eval_languages=["de", "en"], eval_articles="0",
        per_device_train_batch_size=16, learning_rate=1e-3, max_steps=6, no_progress=True,
        dataloader_num_workers=0, logging_steps=1, device=DEVICE,
    )  # fmt: skip
    cfg.validate()
    train(cfg)
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["device"].startswith(DEVICE.split(":")[0])
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").open()]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    before, after = report["before"]["xquad-r"], report["after"]["xquad-r"]
    assert 0.0 <= before["summary"]["mono"] <= 1.0 and 0.0 <= after["summary"]["mono"] <= 1.0
    assert (out / "model" / "config.json").exists()
