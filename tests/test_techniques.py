"""Issue 12's techniques, each with a tiny model and a test that fails if it were silently
off: WiSE-FT (lambda 0 is the base model exactly, lambda 1 plain training bit for bit, 'auto'
chooses on the validation split), the distillation and L2-SP regularisers (weight 0 is plain
training bit for bit; on cross-lingual steps distillation adds nothing), own-language hard
negatives mined with hnswlib (checked against exact search), alpha schedules and temperature
sampling in the Rust sampler, and LoRA (only the adapted modules change)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hybridrs import PairPool, load_parallel_qa  # noqa: E402
from hybridrs.data import ParallelQA  # noqa: E402
from hybridrs.models import interpolate_state  # noqa: E402
from hybridrs.sampling import HybridBatchSampler, temperature_weights  # noqa: E402
from hybridrs.train import TrainConfig, train  # noqa: E402
from hybridrs.train.negatives import mine_own_language_negatives  # noqa: E402
from hybridrs.train.wise import choose_lambda  # noqa: E402

from .conftest import MLQA  # noqa: E402

pytestmark = pytest.mark.model


def cfg(tiny_model, train_data, out, **kw) -> TrainConfig:
    base = {
        "model": str(tiny_model),
        "train_data": str(train_data),
        "eval_data": [],
        "output_dir": str(out),
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        # plain training unless a test turns a technique on (distillation is on by default)
        "distill_weight": 0.0,
        "max_steps": 8,
        "no_progress": True,
        "dataloader_num_workers": 0,
        "skip_eval_before": True,
        "exact_search_below": 10**9,
    }
    base.update(kw)
    c = TrainConfig(**base)
    c.validate()
    return c


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    w = load_file(str(path / "model.safetensors"))
    return {k: v for k, v in w.items() if not k.startswith("pooler.")}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def plain(tiny_model, small_train, tmp_path_factory) -> dict:
    """Plain hybrid training (the reference every technique is compared with)."""
    out = tmp_path_factory.mktemp("plain")
    train(cfg(tiny_model, small_train, out))
    return weights(out / "model")


@pytest.fixture(scope="module")
def plain_cross(tiny_model, small_train, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("plain-cross")
    train(cfg(tiny_model, small_train, out, strategy="cross"))
    return weights(out / "model")


# -- WiSE-FT ---------------------------------------------------------------------------------
def test_interpolate_state_ends_and_middle(tiny_model, plain):
    base = weights(tiny_model)
    assert not same(base, plain)  # training moved the weights
    assert same(interpolate_state(base, plain, 0.0), base)
    assert same(interpolate_state(base, plain, 1.0), plain)
    mid = interpolate_state(base, plain, 0.25)
    k = next(k for k in base if base[k].is_floating_point() and not torch.equal(base[k], plain[k]))
    torch.testing.assert_close(mid[k], 0.75 * base[k] + 0.25 * plain[k])
    with pytest.raises(ValueError, match="lambda must lie in"):
        interpolate_state(base, plain, 1.5)
    with pytest.raises(ValueError, match="differ in their tensors"):
        interpolate_state({"a": base[k]}, plain, 0.5)


def test_wise_ft_0_is_the_base_model_and_1_is_plain_training(
    tiny_model, small_train, plain, tmp_path
):
    train(cfg(tiny_model, small_train, tmp_path / "w0", wise_ft="0"))
    assert same(weights(tmp_path / "w0" / "model"), weights(tiny_model))
    rep = train(cfg(tiny_model, small_train, tmp_path / "w1", wise_ft="1"))
    assert same(weights(tmp_path / "w1" / "model"), plain)
    assert rep["train"]["wise_ft"]["lambda"] == 1.0


def test_wise_ft_auto_chooses_on_the_validation_split(tiny_model, tmp_path, monkeypatch):
    from hybridrs.models import Encoder

    calls: list[str] = []
    embed = Encoder.embed

    def counted(self, ds, *a, **k):
        calls.append(ds.name)
        return embed(self, ds, *a, **k)

    monkeypatch.setattr(Encoder, "embed", counted)
    out = tmp_path / "auto"
    rep = train(
        cfg(
            tiny_model,
            MLQA,
            out,
            validation_split=0.2,
            wise_ft="auto",
            wise_ft_grid="0,0.5,1",
            eval_batch_size=256,
        )
    )
    saved = json.loads((out / "wise_ft.json").read_text())
    assert [p["lambda"] for p in saved["curve"]] == [0.0, 0.5, 1.0]
    assert saved["lambda"] == rep["train"]["wise_ft"]["lambda"] == choose_lambda(saved["curve"])
    assert (out / "wise_ft.png").stat().st_size > 0
    # the chosen point keeps the base model's monolingual mAP on the validation split
    point = next(p for p in saved["curve"] if p["lambda"] == saved["lambda"])
    assert point["mono"] >= saved["curve"][0]["mono"]
    # the final evaluation of the validation split reuses the chosen lambda's embeddings
    after = rep["after"]["validation"]["summary"]
    assert all(after[k] == point[k] for k in ("mono", "cross", "multi", "rank_distance"))
    assert sum("validation" in name for name in calls) == 3, calls


def test_choose_lambda_rule():
    curve = [
        {"lambda": 0.0, "mono": 0.80, "multi": 0.30},
        {"lambda": 0.5, "mono": 0.81, "multi": 0.50},
        {"lambda": 1.0, "mono": 0.77, "multi": 0.60},  # best multi, but pays in mono
    ]
    assert choose_lambda(curve) == 0.5
    assert choose_lambda(curve[:1]) == 0.0
    with pytest.raises(ValueError):
        choose_lambda([])


def test_wise_ft_settings_are_checked(tiny_model, small_train, tmp_path):
    for kw, msg in (
        ({"wise_ft": "auto"}, "validation_split"),
        ({"wise_ft": "1.5"}, "must lie in"),
        ({"wise_ft": "half"}, "wise_ft"),
        ({"wise_ft": "auto", "validation_split": 0.2, "wise_ft_grid": "0,x"}, "wise_ft_grid"),
    ):
        with pytest.raises(ValueError, match=msg):
            cfg(tiny_model, small_train, tmp_path / "x", **kw)


# -- regularisers ----------------------------------------------------------------------------
def test_weight_zero_is_plain_training_bit_for_bit(tiny_model, small_train, plain, tmp_path):
    train(cfg(tiny_model, small_train, tmp_path / "z", distill_weight=0.0, l2sp_weight=0.0))
    assert same(weights(tmp_path / "z" / "model"), plain)


def test_l2sp_keeps_the_weights_near_the_base(tiny_model, small_train, plain, tmp_path):
    train(cfg(tiny_model, small_train, tmp_path / "l2", l2sp_weight=10.0))
    reg, base = weights(tmp_path / "l2" / "model"), weights(tiny_model)
    assert not same(reg, plain)

    def dist(w: dict) -> float:
        return sum(float((w[k].float() - base[k].float()).pow(2).sum()) for k in base)

    assert dist(reg) < 0.5 * dist(plain)


def test_distillation_acts_on_monolingual_steps_only(
    tiny_model, small_train, plain, plain_cross, tmp_path
):
    train(cfg(tiny_model, small_train, tmp_path / "d", distill_weight=1.0))
    assert not same(weights(tmp_path / "d" / "model"), plain)
    # cross-lingual steps only: the term never applies, plain cross training bit for bit
    train(cfg(tiny_model, small_train, tmp_path / "dc", distill_weight=1.0, strategy="cross"))
    assert same(weights(tmp_path / "dc" / "model"), plain_cross)


# -- hard negatives --------------------------------------------------------------------------
def test_mined_negatives_equal_exact_search_in_the_own_language():
    rng = np.random.default_rng(0)
    ids, langs, qs, ps = [], [], [], []
    for g in range(60):
        for lang in ("de", "en", "fr"):
            if rng.random() < 0.85:
                ids.append(f"g{g}")
                langs.append(lang)
                qs.append(f"q{g}-{lang}")
                ps.append(f"p{g % 50}-{lang}")  # groups 50.. share passage texts with 0..
    qa = ParallelQA(ids, langs, qs, ps, [[] for _ in ids])
    vec = {t: v for t, v in zip(qs + sorted(set(ps)), rng.normal(size=(1000, 16)), strict=False)}

    def embed(texts, kind):
        e = np.array([vec[t] for t in texts], dtype=np.float32)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    mined = mine_own_language_negatives(qa, embed, k=3, seed=1)
    for i in range(len(qa)):
        # exact: score every distinct passage of the language, best first
        texts = sorted({ps[j] for j in range(len(qa)) if langs[j] == langs[i]})
        s = embed(texts, "passage") @ embed([qs[i]], "query")[0]
        owners = {}
        for j in range(len(qa)):
            if langs[j] == langs[i]:
                owners.setdefault(ps[j], j)
        want = [
            owners[t]
            for t in np.array(texts)[np.argsort(-s, kind="stable")]
            if ids[owners[t]] != ids[i] and t != ps[i]
        ][:3]
        assert mined[i] == want
        assert all(langs[j] == langs[i] and ids[j] != ids[i] for j in mined[i])


def test_training_with_mined_negatives(tiny_model, small_train, plain, tmp_path):
    rep = train(cfg(tiny_model, small_train, tmp_path / "hn", mine_hard_negatives=1))
    assert rep["train"]["mined_negatives"] > 0.9 * len(load_parallel_qa(small_train))
    assert not same(weights(tmp_path / "hn" / "model"), plain)


# -- sampling --------------------------------------------------------------------------------
def test_alpha_schedule_in_the_sampler():
    pool = PairPool.from_arrays(np.repeat(np.arange(400), 3), np.tile(["de", "en", "fr"], 400))
    s = HybridBatchSampler(
        pool, 4, alpha=0.0, alpha_schedule="linear", alpha_end=1.0, total_steps=200
    )
    assert len(s) == 100
    assert (s.alpha_at(0), s.alpha_at(199)) == (0.0, 1.0)
    mono = [sum(m >= 0 for m in s.plan(e)["modes"]) for e in (0, 1)]
    assert mono[0] < 40 < 60 < mono[1]
    t = HybridBatchSampler(
        pool, 4, alpha=1.0, alpha_schedule="triangle", alpha_end=0.0, total_steps=201
    )
    assert (t.alpha_at(0), t.alpha_at(100), t.alpha_at(200)) == (1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="alpha_end"):
        HybridBatchSampler(pool, 4, alpha_schedule="linear", total_steps=10)
    with pytest.raises(ValueError, match="alpha_schedule"):
        HybridBatchSampler(pool, 4, alpha_schedule="cosine", alpha_end=1.0, total_steps=10)
    with pytest.raises(ValueError, match="strategy"):
        HybridBatchSampler(
            pool, 4, strategy="mono", alpha_schedule="linear", alpha_end=0.0, total_steps=10
        )


def test_alpha_schedule_in_training(tiny_model, small_train, tmp_path):
    rep = train(
        cfg(
            tiny_model,
            small_train,
            tmp_path / "s",
            alpha=0.0,
            alpha_schedule="linear",
            alpha_end=1.0,
        )
    )
    assert rep["train"]["steps"] == 8
    with pytest.raises(ValueError, match="alpha_end"):
        cfg(tiny_model, small_train, tmp_path / "x", alpha_schedule="linear")


def test_temperature_weights_and_draws():
    w = temperature_weights({"en": 900, "de": 100}, 1.0)
    assert w == pytest.approx({"en": 0.9, "de": 0.1})
    w5 = temperature_weights({"en": 900, "de": 100}, 5.0)
    assert 0.5 < w5["en"] < 0.9
    assert temperature_weights({"en": 900, "de": 100}, 1e9)["en"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="language_temperature"):
        temperature_weights({"en": 1}, 0.0)
    # the sampler draws monolingual languages in those proportions
    ids = np.concatenate([np.arange(900), np.arange(100)])
    langs = np.array(["en"] * 900 + ["de"] * 100)
    pool = PairPool.from_arrays(ids, langs)
    s = HybridBatchSampler(pool, 2, alpha=1.0, language_weights=w)
    modes = np.concatenate([s.plan(e)["modes"] for e in range(20)])
    share_en = float(np.mean(modes == pool.languages.index("en")))
    assert 0.86 < share_en < 0.94


# -- LoRA ------------------------------------------------------------------------------------
def test_lora_trains_only_the_adapted_modules(tiny_model, small_train, tmp_path):
    pytest.importorskip("peft")
    train(cfg(tiny_model, small_train, tmp_path / "lora", lora_r=4, lora_target_modules="query"))
    w, base = weights(tmp_path / "lora" / "model"), weights(tiny_model)
    assert w.keys() == base.keys()  # merged: a plain model, no adapter tensors
    changed = {k for k in base if not torch.equal(w[k], base[k])}
    assert changed and all("attention.self.query.weight" in k for k in changed)
    with pytest.raises(ValueError, match="lora_target_modules"):
        train(cfg(tiny_model, small_train, tmp_path / "bad", lora_r=4, lora_target_modules="qkv"))
