"""A model directory with the default encoder's architecture and random weights, for the GPU
checks (``benches/gpu_checks.sh``): the device machine reaches no package index and the default
encoder's weights (a 72 MB package) do not fit what travels there, while its configuration and
tokenizer do (``make gpu-pack`` puts them in ``.gpu/e5``). Training throughput depends on the
architecture, batch and sequence length, not on the weights' values.

    python benches/gpu_model.py .gpu/e5 OUT_DIR
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("skeleton", type=Path, help="the default model's directory without weights")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch
    from transformers import BertConfig, BertModel

    if not (args.skeleton / "config.json").exists():
        raise SystemExit(f"{args.skeleton}: no config.json (run `make gpu-pack` first)")
    if (args.out / "model.safetensors").exists():
        print(f"{args.out}: exists")
        return
    shutil.copytree(args.skeleton, args.out, dirs_exist_ok=True)
    torch.manual_seed(args.seed)
    model = BertModel(BertConfig.from_pretrained(args.skeleton), add_pooling_layer=False)
    model.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: the default encoder's architecture, {n / 1e6:.1f}M random weights")


if __name__ == "__main__":
    main()
