"""Encoders that turn a retrieval set into scores: a character n-gram TF-IDF baseline (no model
needed) and local transformers models (sentence-transformers settings honoured).

Nothing here downloads: a model is a local directory. A name that is not a directory fails at
once with a message saying so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import RetrievalSet

__all__ = [
    "TfidfEncoder",
    "TransformerEncoder",
    "candidate_texts",
    "encode_texts",
    "load_encoder",
    "load_transformer",
    "pool_hidden",
]


def candidate_texts(dataset: RetrievalSet, with_context: bool = False) -> list[str]:
    """Candidate texts: the sentence, or LAReQA's (sentence, context) pair joined by a space."""
    if with_context:
        return [f"{c.text} {c.context}" for c in dataset.candidates]
    return [c.text for c in dataset.candidates]


class TfidfEncoder:
    """Character n-gram TF-IDF (``char_wb``, n = 1..3, sublinear tf), fitted on the set's own
    questions and candidates. A lexical baseline: strong monolingually, near zero across
    scripts. Needs scikit-learn.
    """

    name = "tfidf"

    def __init__(
        self, ngram_range: tuple[int, int] = (1, 3), max_features: int | None = None
    ) -> None:
        self.ngram_range = ngram_range
        self.max_features = max_features

    def scores(
        self, dataset: RetrievalSet, with_context: bool = False, progress: bool = False
    ) -> np.ndarray:
        """The float32 cosine score matrix ``(n_questions, n_candidates)``."""
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
        except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
            raise ImportError(
                "the TF-IDF encoder needs scikit-learn: pip install scikit-learn"
            ) from e
        questions = [q.text for q in dataset.questions]
        cands = candidate_texts(dataset, with_context)
        vec = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.ngram_range,
            sublinear_tf=True,
            max_features=self.max_features,
            dtype=np.float32,
        )
        vec.fit(questions + cands)
        q = vec.transform(questions).tocsr()
        ct = vec.transform(cands).T.tocsc()
        out = np.empty((len(questions), len(cands)), dtype=np.float32)
        step = 512
        starts = range(0, len(questions), step)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="tf-idf scores", unit="block")
        for a in starts:
            out[a : a + step] = (q[a : a + step] @ ct).toarray()
        return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def load_transformer(path: str | Path, device: Any = "cpu") -> tuple[Any, Any]:
    """(tokenizer, model) of a local transformers directory, without hub access. A BERT model
    is loaded without its pooler (retrieval pools the token states itself)."""
    from transformers import AutoModel, AutoTokenizer

    root = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    extra = (
        {"add_pooling_layer": False}
        if _read_json(root / "config.json").get("model_type") == "bert"
        else {}
    )
    model = AutoModel.from_pretrained(str(root), local_files_only=True, **extra).to(device)
    return tokenizer, model


def pool_hidden(hidden: Any, attention_mask: Any, pooling: str = "mean") -> Any:
    """Sentence vectors from token states: ``"mean"`` over the attended tokens, ``"cls"`` (the
    first token) or ``"max"``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        return hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    prefix: str = "",
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: Any = "cpu",
    pooling: str = "mean",
    normalize: bool = True,
    progress: bool = True,
    desc: str = "encoding",
) -> np.ndarray:
    """Embeddings ``(len(texts), dim)`` as float32: texts batched by length (less padding),
    ``prefix`` prepended, pooled, L2-normalised unless ``normalize=False``. The model runs in
    eval mode and is put back in the mode it was in."""
    import torch

    if len(texts) == 0:
        raise ValueError("texts: nothing to encode")
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    starts: Any = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for a in starts:
                idx = order[a : a + batch_size]
                enc = tokenizer(
                    [prefix + texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = model(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).last_hidden_state
                emb = pool_hidden(hidden, enc["attention_mask"], pooling).float()
                if normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                e = emb.cpu().numpy()
                if out is None:
                    out = np.empty((len(texts), e.shape[1]), dtype=np.float32)
                out[idx] = e
    finally:
        model.train(was_training)
    assert out is not None
    return out


class TransformerEncoder:
    """A transformers encoder loaded from a local directory.

    Uses the model's own sentence-transformers settings when it has them (``modules.json``,
    the pooling config, ``config_sentence_transformers.json`` prompts), else mean pooling and
    the prefixes given. Texts are batched by length (less padding) with a progress bar.

    Args:
        path: A local model directory (no hub access here).
        query_prefix / passage_prefix: Prepended to questions / candidates (``"query: "`` and
            ``"passage: "`` for e5 models); default: the model's own prompts, else none.
        max_length: Truncation length in tokens.
        batch_size: Texts per forward pass.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when available).
        normalize: L2-normalise embeddings (cosine scores), default True.
    """

    def __init__(
        self,
        path: str | Path,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        device: str | None = None,
        normalize: bool = True,
    ) -> None:
        root = Path(path)
        if not root.is_dir():
            raise ValueError(
                f"encoder: {str(path)!r} is not a local model directory (there is no model hub "
                "here; pass a directory holding config.json and the weights, or 'tfidf')"
            )
        if not (root / "config.json").exists():
            raise ValueError(
                f"encoder: {str(root)!r} has no config.json (not a transformers model)"
            )
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError as e:
            raise ImportError(
                "a transformers encoder needs the model extra: pip install 'hybridrs[model]'"
            ) from e
        self.path = root
        self.name = root.name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer, self.model = load_transformer(root, self.device)
        self.model.eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.normalize = normalize
        self.pooling = "mean"
        pool_cfg = _read_json(root / "1_Pooling" / "config.json")
        if pool_cfg.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pool_cfg.get("pooling_mode_max_tokens"):
            self.pooling = "max"
        prompts = _read_json(root / "config_sentence_transformers.json").get("prompts", {}) or {}
        self.query_prefix = query_prefix if query_prefix is not None else prompts.get("query", "")
        self.passage_prefix = (
            passage_prefix
            if passage_prefix is not None
            else prompts.get("passage", prompts.get("document", ""))
        )

    def encode(
        self, texts: Sequence[str], prefix: str = "", progress: bool = True, desc: str = "encoding"
    ) -> np.ndarray:
        """Embeddings ``(len(texts), dim)`` as float32, batched by length."""
        return encode_texts(
            self.model,
            self.tokenizer,
            texts,
            prefix,
            max_length=self.max_length,
            batch_size=self.batch_size,
            device=self.device,
            pooling=self.pooling,
            normalize=self.normalize,
            progress=progress,
            desc=desc,
        )

    def embed(
        self, dataset: RetrievalSet, with_context: bool = False, progress: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(question embeddings, candidate embeddings) of a retrieval set."""
        q = self.encode(
            [x.text for x in dataset.questions], self.query_prefix, progress, "questions"
        )
        c = self.encode(
            candidate_texts(dataset, with_context), self.passage_prefix, progress, "candidates"
        )
        return q, c


def load_encoder(spec: str, **kwargs: Any) -> TfidfEncoder | TransformerEncoder:
    """``"tfidf"``, ``"default"`` (multilingual-e5-small built from PyPI packages, see
    :mod:`hybridrs.models`) or a local model directory."""
    if spec == "tfidf":
        return TfidfEncoder()
    if spec == "default":
        from .models import default_model_dir

        return TransformerEncoder(default_model_dir(), **kwargs)
    return TransformerEncoder(spec, **kwargs)
