"""BEIR / MIRACL layout: the loader, and nDCG@k / recall@k (Rust) against a plain-Python
reference: the trec_eval definitions on untied scores, the average over all tie orders on tied
ones."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

import hybridrs
from hybridrs.data import RetrievalSet, load_beir
from hybridrs.data.lareqa import Candidate, Question


def _write_beir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    corpus = [
        {"_id": "d1", "title": "Paris", "text": "Paris is the capital of France.", "lang": "en"},
        {"_id": "d2", "title": "", "text": "Berlin ist die Hauptstadt.", "lang": "de"},
        {"_id": "d3", "title": "Rome", "text": "Rome is in Italy.", "lang": "en"},
        {"_id": "d4", "text": "München liegt in Bayern.", "lang": "de"},
        {"_id": "d5", "title": "Oslo", "text": "Oslo is in Norway.", "lang": "en"},
    ]
    queries = [
        {"_id": "q1", "text": "capital of France?", "lang": "en"},
        {"_id": "q2", "text": "Hauptstadt Deutschlands?", "lang": "de"},
        {"_id": "q3", "text": "unjudged", "lang": "en"},
        {"_id": "q4", "text": "only non-relevant judgements", "lang": "en"},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t3\nq2\td4\t1\nq2\td1\t0\n"
        "q4\td5\t0\n"
    )
    return root


def test_loader_reads_the_layout(tmp_path: Path) -> None:
    ds = load_beir(_write_beir(tmp_path / "mini"))
    assert ds.languages == ("de", "en")
    assert [q.id for q in ds.questions] == ["q1", "q2"]  # q3 unjudged, q4 no relevant
    assert ds.n_candidates == 5
    texts = [c.text for c in ds.candidates]
    assert texts[:2] == ["Berlin ist die Hauptstadt.", "München liegt in Bayern."]
    assert "Paris Paris is the capital of France." in texts
    q1 = ds.relevant(0)
    assert [texts[i].split()[0] for i in q1] == ["Paris", "Rome"]
    a, b = ds.relevance_indptr[0], ds.relevance_indptr[1]
    assert ds.relevance_gain[a:b].tolist() == [2.0, 1.0]
    sub = ds.subset(languages=["de"])
    assert sub.relevance_gain.tolist() == [3.0, 1.0]


def test_loader_errors_name_the_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _write_beir(tmp_path / "mini")
    with pytest.raises(ValueError, match=r"splits here: \['test'\]"):
        load_beir(root, split="dev")
    (root / "qrels" / "bad.tsv").write_text("q1\tnope\t1\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: unknown passage id 'nope'"):
        load_beir(root, split="bad")
    (root / "qrels" / "bad.tsv").write_text("q1\td1\thigh\n")
    with pytest.raises(ValueError, match="not a number"):
        load_beir(root, split="bad")
    with open(root / "corpus.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match=r"corpus.jsonl:6: not valid JSON"):
        load_beir(root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not a local directory and the hub is unreachable"):
        load_beir("BeIR/scifact")


# -- the metrics against a plain-Python reference ------------------------------------------------
def _ndcg_untied(scores: list[float], gains: dict[int, float], k: int) -> float:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    dcg = sum(gains.get(c, 0.0) / math.log2(p + 2) for p, c in enumerate(order[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(p + 2) for p, g in enumerate(ideal))


def _recall_untied(scores: list[float], gains: dict[int, float], k: int) -> float:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return sum(1 for c in order[:k] if c in gains) / len(gains)


def _tie_orders(scores: list[float]) -> list[list[int]]:
    """Every ranking consistent with the scores (each tie group in every order)."""
    levels = sorted(set(scores), reverse=True)
    groups = [[i for i, s in enumerate(scores) if s == v] for v in levels]
    return [
        [c for g in combo for c in g]
        for combo in itertools.product(*(itertools.permutations(g) for g in groups))
    ]


def _set(scores: np.ndarray, rel: list[dict[int, float]]) -> RetrievalSet:
    nc = scores.shape[1]
    cands = [Candidate("en", f"c{i}", "", 0) for i in range(nc)]
    qs = [Question("en", f"q{i}", f"q{i}", next(iter(r)), 0) for i, r in enumerate(rel)]
    return RetrievalSet(
        ["en"], qs, cands, [sorted(r) for r in rel],
        gains=[[r[c] for c in sorted(r)] for r in rel],
    )  # fmt: skip


def test_untied_scores_match_trec_eval_definitions() -> None:
    rng = np.random.default_rng(3)
    nq, nc = 40, 300
    scores = rng.standard_normal((nq, nc))
    rel = []
    for _ in range(nq):
        cols = rng.choice(nc, size=int(rng.integers(1, 15)), replace=False)
        rel.append({int(c): float(rng.integers(1, 4)) for c in cols})
    ds = _set(scores, rel)
    for k, kr in [(10, 100), (1, 5), (500, 300)]:
        rep = hybridrs.evaluate_graded(ds, scores, ndcg_at=k, recall_at=kr)
        for i in range(nq):
            row = scores[i].tolist()
            assert rep.ndcg[i] == pytest.approx(_ndcg_untied(row, rel[i], k), abs=1e-12)
            assert rep.recall[i] == pytest.approx(_recall_untied(row, rel[i], kr), abs=1e-12)
    # the embeddings form (float32, in blocks) equals the matrix form of the same scores
    q = rng.standard_normal((nq, 8)).astype(np.float32)
    c = rng.standard_normal((nc, 8)).astype(np.float32)
    a = hybridrs.evaluate_graded(ds, q, c, block_rows=7)
    b = hybridrs.evaluate_graded(ds, q @ c.T)
    assert np.allclose(a.ndcg, b.ndcg, atol=1e-12) and np.allclose(a.recall, b.recall, atol=1e-12)
    assert set(a.summary()) == {"ndcg@10", "recall@100", "n_questions"}


def test_tied_scores_are_the_average_over_tie_orders() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        nc = int(rng.integers(2, 7))
        scores = rng.integers(0, 3, (1, nc)).astype(np.float64)
        cols = rng.choice(nc, size=int(rng.integers(1, nc + 1)), replace=False)
        rel = {int(c): float(rng.integers(1, 4)) for c in cols}
        ds = _set(scores, [rel])
        for k in (1, 2, 3):
            rep = hybridrs.evaluate_graded(ds, scores, ndcg_at=k, recall_at=k)
            orders = _tie_orders(scores[0].tolist())
            ideal = sorted(rel.values(), reverse=True)[:k]
            idcg = sum(g / math.log2(p + 2) for p, g in enumerate(ideal))
            dcgs = [
                sum(rel.get(c, 0.0) / math.log2(p + 2) for p, c in enumerate(o[:k])) for o in orders
            ]
            ndcg = np.mean(dcgs) / idcg
            recall = np.mean([sum(1 for c in o[:k] if c in rel) / len(rel) for o in orders])
            assert rep.ndcg[0] == pytest.approx(ndcg, abs=1e-12)
            assert rep.recall[0] == pytest.approx(recall, abs=1e-12)


def test_bad_inputs() -> None:
    scores = np.zeros((1, 3))
    ds = _set(scores, [{0: 1.0}])
    with pytest.raises(ValueError, match="ndcg_at"):
        hybridrs.evaluate_graded(ds, scores, ndcg_at=0)
    with pytest.raises(ValueError, match="gains"):
        _set(scores, [{0: 0.0}])
    with pytest.raises(ValueError, match="scores"):
        hybridrs.evaluate_graded(ds, np.zeros((1, 4)))


def test_exact_top_k_is_the_head_of_a_full_sort() -> None:
    from hybridrs.evaluation import exact_top_k

    rng = np.random.default_rng(11)
    q = rng.standard_normal((50, 8)).astype(np.float32)
    c = rng.standard_normal((700, 8)).astype(np.float32)
    full = np.argsort(-(q @ c.T), axis=1, kind="stable")
    for k, block in [(10, None), (1, 7), (700, 13)]:
        assert np.array_equal(exact_top_k(q, c, k, block), full[:, :k])


def test_hybridrs_eval_reads_a_beir_directory(tmp_path: Path) -> None:
    from hybridrs.cli.eval import eval_main

    root = _write_beir(tmp_path / "mini")
    out = tmp_path / "out"
    assert eval_main(["--data", str(root), "--output_dir", str(out), "--no_progress"]) == 0
    rep = json.loads((out / "mini-graded.json").read_text())
    assert set(rep["summary"]) == {"ndcg@10", "recall@100", "n_questions"}
    assert rep["summary"]["n_questions"] == 2
    assert 0 < rep["summary"]["ndcg@10"] <= 1
