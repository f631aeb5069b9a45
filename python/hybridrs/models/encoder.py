"""The one encoder object of hybridrs: :class:`Encoder` owns tokenisation, prefixes, pooling,
normalisation and the forward pass, and is used alike by training (the loss's forward pass),
evaluation (embeddings of a retrieval set) and export (the saved model directory).

Nothing here downloads: a model is a local directory (see :func:`hybridrs.models.resolve_model`
for names).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import RetrievalSet
from .st_files import POOLING_MODES, read_json, write_sentence_transformers_files
from .tfidf import candidate_texts

__all__ = ["Encoder", "Tokenize", "load_transformer", "pool_hidden"]


def load_transformer(path: str | Path, device: Any = "cpu") -> tuple[Any, Any]:
    """(tokenizer, model) of a local transformers directory, without hub access. A BERT model
    whose weights have no pooler is loaded without one (retrieval pools the token states
    itself), so that loading reports nothing missing; one saved with a pooler keeps it."""
    from transformers import AutoModel, AutoTokenizer

    root = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    extra: dict[str, Any] = (
        {"add_pooling_layer": False}
        if read_json(root / "config.json").get("model_type") == "bert" and not _has_pooler(root)
        else {}
    )
    model = AutoModel.from_pretrained(str(root), local_files_only=True, **extra).to(device)
    return tokenizer, model


def _has_pooler(root: Path) -> bool:
    """Whether the directory's safetensors weights hold a pooler."""
    files = sorted(root.glob("*.safetensors"))
    if not files:
        return False
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="np") as st:
            if any(k.endswith("pooler.dense.weight") for k in st.keys()):
                return True
    return False


def pool_hidden(hidden: Any, attention_mask: Any, pooling: str = "mean") -> Any:
    """Sentence vectors from token states: ``"mean"`` over the attended tokens, ``"cls"`` (the
    first token) or ``"max"``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        return hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@dataclass
class Tokenize:
    """Tokenisation with the encoder's prefixes: picklable on its own (DataLoader workers need
    no model). ``kind`` is ``"query"`` or ``"passage"``."""

    tokenizer: Any
    query_prefix: str
    passage_prefix: str
    max_length: int

    def prefix(self, kind: str) -> str:
        """The prefix of ``kind``."""
        if kind not in ("query", "passage"):
            raise ValueError(f"kind: must be 'query' or 'passage', got {kind!r}")
        return self.query_prefix if kind == "query" else self.passage_prefix

    def __call__(
        self, texts: Sequence[str], kind: str, max_length: int | None = None
    ) -> dict[str, Any]:
        """Padded, truncated PyTorch tensors (``input_ids``, ``attention_mask``, ...)."""
        return self.with_prefix(texts, self.prefix(kind), max_length)

    def with_prefix(
        self, texts: Sequence[str], prefix: str, max_length: int | None = None
    ) -> dict[str, Any]:
        """As a call, with an explicit prefix."""
        return dict(
            self.tokenizer(
                [prefix + t for t in texts],
                padding=True,
                truncation=True,
                max_length=max_length or self.max_length,
                return_tensors="pt",
            )
        )


class Encoder:
    """A dual encoder with shared weights: a transformers model, its tokenizer, the query /
    passage prefixes, the pooling and L2 normalisation.

    Build with :meth:`load` (a local directory). The model's own sentence-transformers
    settings are used when present (``1_Pooling`` mode, ``config_sentence_transformers.json``
    prompts); arguments override them.

    Attributes:
        tokenize: A :class:`Tokenize` (prefixes included) for data loaders.
        pooling: ``"mean"``, ``"cls"`` or ``"max"``.
        normalize: L2-normalise embeddings (cosine scores).
        max_length / batch_size: Truncation length and texts per forward pass of
            :meth:`encode`.
    """

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        *,
        query_prefix: str = "",
        passage_prefix: str = "",
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 128,
        batch_size: int = 64,
        device: Any = "cpu",
        source: Path | None = None,
    ) -> None:
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling: must be one of {sorted(POOLING_MODES)}, got {pooling!r}")
        self.model = model
        self.tokenize = Tokenize(tokenizer, query_prefix, passage_prefix, max_length)
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        self.device = device
        self.source = source
        self.name = source.name if source is not None else "encoder"

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        pooling: str | None = None,
        normalize: bool = True,
        max_length: int = 128,
        batch_size: int = 64,
        device: Any = None,
    ) -> Encoder:
        """An encoder from a local transformers directory.

        Args:
            path: The directory (config.json and weights); no hub access here.
            query_prefix / passage_prefix: Prepended to questions / candidates; default: the
                model's own prompts, else none.
            pooling: Default: the model's ``1_Pooling`` mode, else mean.
            normalize: L2-normalise embeddings.
            max_length: Truncation length in tokens; batch_size: texts per forward pass.
            device: ``"cpu"``, ``"cuda"``... (default: CUDA when available).
        """
        root = Path(path)
        if not root.is_dir():
            raise ValueError(
                f"encoder: {str(path)!r} is not a local model directory (there is no model hub "
                "here; pass a directory holding config.json and the weights, or 'default')"
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
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer, model = load_transformer(root, dev)
        model.eval()
        if pooling is None:
            pool_cfg = read_json(root / "1_Pooling" / "config.json")
            pooling = next((m for m, k in POOLING_MODES.items() if pool_cfg.get(k)), "mean")
        prompts = read_json(root / "config_sentence_transformers.json").get("prompts", {}) or {}
        return cls(
            tokenizer,
            model,
            query_prefix=query_prefix if query_prefix is not None else prompts.get("query", ""),
            passage_prefix=passage_prefix
            if passage_prefix is not None
            else prompts.get("passage", prompts.get("document", "")),
            pooling=pooling,
            normalize=normalize,
            max_length=max_length,
            batch_size=batch_size,
            device=dev,
            source=root,
        )

    # -- the forward pass ------------------------------------------------------------------------
    @property
    def query_prefix(self) -> str:
        """Prefix of questions."""
        return self.tokenize.query_prefix

    @property
    def passage_prefix(self) -> str:
        """Prefix of passages / candidates."""
        return self.tokenize.passage_prefix

    @property
    def max_length(self) -> int:
        """Truncation length of :meth:`encode`."""
        return self.tokenize.max_length

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.config.hidden_size)

    def forward(self, batch: dict[str, Any], model: Any = None) -> Any:
        """Pooled (and normalised) float32 embeddings of a tokenised batch, with gradients:
        the training forward pass. ``model`` stands in for ``self.model`` (a DDP wrapper)."""
        import torch

        m = self.model if model is None else model
        hidden = m(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        emb = pool_hidden(hidden, batch["attention_mask"], self.pooling).float()
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    def encode(
        self,
        texts: Sequence[str],
        prefix: str = "",
        progress: bool = True,
        desc: str = "encoding",
        max_length: int | None = None,
    ) -> np.ndarray:
        """Embeddings ``(len(texts), dim)`` as float32: texts batched by length (less padding),
        ``prefix`` prepended. The model runs in eval mode and is put back in the mode it was
        in."""
        import torch

        if len(texts) == 0:
            raise ValueError("texts: nothing to encode")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        starts: Any = range(0, len(texts), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=desc, unit="batch", leave=False)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for a in starts:
                    idx = order[a : a + self.batch_size]
                    enc = self.tokenize.with_prefix([texts[i] for i in idx], prefix, max_length)
                    enc = {k: v.to(self.device) for k, v in enc.items()}
                    e = self.forward(enc).cpu().numpy()
                    if out is None:
                        out = np.empty((len(texts), e.shape[1]), dtype=np.float32)
                    out[idx] = e
        finally:
            self.model.train(was_training)
        if out is None:  # pragma: no cover - len(texts) > 0
            raise RuntimeError("nothing encoded")
        return out

    def embed(
        self, dataset: RetrievalSet, with_context: bool = False, progress: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(question embeddings, candidate embeddings) of a retrieval set."""
        name = f"{dataset.name} " if dataset.name else ""
        q = self.encode(
            [x.text for x in dataset.questions], self.query_prefix, progress, f"{name}questions"
        )
        c = self.encode(
            candidate_texts(dataset, with_context),
            self.passage_prefix,
            progress,
            f"{name}candidates",
        )
        return q, c

    # -- export ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Writes a model directory that loads with transformers ``AutoModel`` and with
        sentence-transformers and embeds as this encoder does (same pooling, normalisation,
        prompts). The caller makes it atomic (write to a temporary directory, then rename)."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        model = getattr(self.model, "module", self.model)
        bare_bert = getattr(model.config, "model_type", "") == "bert" and (
            getattr(model, "pooler", "absent") is None
        )
        if bare_bert:
            # BertModel loads with a pooler by default and reports its weights as missing
            # (alarming users): save a declared identity pooler, tanh(W h_cls + b) with W = I
            # and b = 0, which retrieval never uses, so that loading is silent.
            import torch
            from transformers.models.bert.modeling_bert import BertPooler

            with torch.random.fork_rng(devices=[]):
                pooler = BertPooler(model.config)
            with torch.no_grad():
                torch.nn.init.eye_(pooler.dense.weight)
                torch.nn.init.zeros_(pooler.dense.bias)
            model.pooler = pooler.to(next(model.parameters()).device)
        try:
            model.save_pretrained(out, safe_serialization=True)
        finally:
            if bare_bert:
                model.pooler = None
        self.tokenize.tokenizer.save_pretrained(out)
        st = read_json(self.source / "sentence_bert_config.json") if self.source else {}
        write_sentence_transformers_files(
            out,
            self.dim,
            self.query_prefix,
            self.passage_prefix,
            pooling=self.pooling,
            normalize=self.normalize,
            max_seq_length=int(st.get("max_seq_length", 512)),
        )
        if self.source is not None and (self.source / "NOTICE").exists():
            shutil.copy(self.source / "NOTICE", out / "NOTICE")
