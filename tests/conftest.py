"""Shared fixtures: the real data sets (../shared/data beside the repository) and their TF-IDF
score matrices, computed once per test run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import hybridrs
from hybridrs.models import TfidfEncoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
XQUAD = DATA / "xquad-r"
MLQA = DATA / "mlqa-r"


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.fail(f"real data missing: {path} (../shared/data must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def xquad() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(_need(XQUAD))


@pytest.fixture(scope="session")
def mlqa() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(_need(MLQA))


@pytest.fixture(scope="session")
def xquad_tfidf(xquad) -> np.ndarray:
    return TfidfEncoder().scores(xquad)


@pytest.fixture(scope="session")
def mlqa_tfidf(mlqa) -> np.ndarray:
    return TfidfEncoder().scores(mlqa)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny randomly initialised BERT with the real XLM-R tokenizer (training tests)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hybridrs.models import default_model_dir

    out = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(str(default_model_dir()))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=1,
    )
    BertModel(cfg, add_pooling_layer=False).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def small_train(tmp_path_factory) -> Path:
    """MLQA-R's parallel pairs as JSONL (the real training format)."""
    from hybridrs import load_parallel_qa

    qa = load_parallel_qa(MLQA)
    path = tmp_path_factory.mktemp("data") / "mlqa.jsonl"
    with open(path, "w") as f:
        for i in range(len(qa)):
            f.write(
                json.dumps(
                    {
                        "id": qa.ids[i],
                        "lang": qa.langs[i],
                        "question": qa.questions[i],
                        "passage": qa.passages[i],
                    }
                )
                + "\n"
            )
    return path
