"""Training throughput: a hybridrs training step against sentence-transformers'
MultipleNegativesRankingLoss on the same model, batch, sequence length and optimiser.

Both sides train the default encoder (multilingual-e5-small, built offline; sentence-transformers
loads the directory hybridrs saves) on the same batches of real MLQA-R question / answer-sentence
pairs ("query: " / "passage: " prefixes), AdamW at lr 3e-5, word embeddings frozen (hybridrs's
default), in-batch negatives, temperature 0.05 (= MNRL's scale 20). One step = tokenise, encode
questions and passages, loss, backward, optimiser step. The two take turns (``--rounds``); each
turn runs ``--warmup`` untimed steps, then ``--steps`` timed ones; the best turn counts.

    python benches/bench_train.py                      # CPU
    python benches/bench_train.py --device cuda        # a GPU, where there is one
    bash benches/gpu_checks.sh                         # on the device machine (see there)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import cpu_info


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_info()}, torch {torch.get_num_threads()} threads"


DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mlqa-r"


def _pairs(n: int, root: Path = DATA) -> list[tuple[str, str]]:
    import hybridrs

    ds = hybridrs.load_lareqa(root, languages=["en", "de", "es"])
    return [(q.text, ds.candidates[q.answer].text) for q in ds.questions[:n] if q.answer >= 0]


def _freeze_words(model: Any) -> None:
    for name, p in model.named_parameters():
        if "word_embeddings" in name:
            p.requires_grad_(False)


def hybridrs_step(
    device: str, max_length: int, model: str = "default"
) -> tuple[Callable[[list[tuple[str, str]]], float], Any]:
    import torch

    from hybridrs.models import load_encoder
    from hybridrs.train.loss import info_nce

    enc = load_encoder(
        model, query_prefix="query: ", passage_prefix="passage: ", max_length=max_length,
        device=device,
    )  # fmt: skip
    enc.model.train()
    _freeze_words(enc.model)
    opt = torch.optim.AdamW([p for p in enc.model.parameters() if p.requires_grad], lr=3e-5)

    def step(batch: list[tuple[str, str]]) -> float:
        q = enc.tokenize.with_prefix([a for a, _ in batch], "query: ", max_length)
        p = enc.tokenize.with_prefix([b for _, b in batch], "passage: ", max_length)
        q = {k: v.to(device) for k, v in q.items()}
        p = {k: v.to(device) for k, v in p.items()}
        loss = info_nce(enc.forward(q), enc.forward(p), 0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, enc


def st_step(
    model_dir: str, device: str, max_length: int
) -> Callable[[list[tuple[str, str]]], float]:
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # its newer home (sentence-transformers 6.3 warns about the old one)
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    model = SentenceTransformer(model_dir, device=device)
    model.max_seq_length = max_length
    model.train()
    _freeze_words(model)
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5)

    def step(batch: list[tuple[str, str]]) -> float:
        prep = getattr(model, "preprocess", model.tokenize)  # tokenize before v5.3
        q = prep([f"query: {a}" for a, _ in batch])
        p = prep([f"passage: {b}" for _, b in batch])
        q = {k: v.to(device) if hasattr(v, "to") else v for k, v in q.items()}
        p = {k: v.to(device) if hasattr(v, "to") else v for k, v in p.items()}
        loss = loss_fn([q, p], None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max_length", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--model",
        default="default",
        help="'default' (multilingual-e5-small) or a local model directory (gpu_checks.sh: the "
        "same architecture with random weights, where the default's packages cannot travel)",
    )
    p.add_argument("--data", type=Path, default=DATA, help="MLQA-R (its en, de and es files)")
    args = p.parse_args()
    import sentence_transformers
    import torch

    pairs = _pairs(args.batch * (args.steps + args.warmup), args.data)
    batches = [pairs[i : i + args.batch] for i in range(0, len(pairs), args.batch)]
    print(
        f"device: {_device_name(args.device)}; torch {torch.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}"
    )
    print(
        f"model {args.model!r}, batch {args.batch} pairs, max length {args.max_length}, "
        f"{args.steps} timed steps after {args.warmup} untimed, best of {args.rounds} turns"
    )
    ours, enc = hybridrs_step(args.device, args.max_length, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        enc.save(tmp)  # the same starting weights for sentence-transformers
        theirs = st_step(tmp, args.device, args.max_length)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, step in (("hybridrs", ours), ("sentence-transformers MNRL", theirs)):
            for b in batches[: args.warmup]:
                step(b)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for b in batches[args.warmup :]:
                step(b)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rate = args.steps * args.batch / (time.perf_counter() - t0)
            best[name] = max(best.get(name, 0.0), rate)
    base = best["sentence-transformers MNRL"]
    for name, rate in best.items():
        print(f"{name:28s} {rate:8.1f} pairs/s  ({rate / base:.2f}x sentence-transformers)")


if __name__ == "__main__":
    main()
