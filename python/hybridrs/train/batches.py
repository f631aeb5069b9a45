"""Training batches: the pair dataset the sampler's rows index, and the collator that
tokenises a batch (with the encoder's prefixes) in the DataLoader worker."""

from __future__ import annotations

from typing import Any

from ..data import ParallelQA
from ..models import Tokenize

__all__ = ["Collator", "PairDataset"]


class PairDataset:
    """Maps a ``(question_row, passage_row)`` pair to its texts (DataLoader dataset)."""

    def __init__(self, qa: ParallelQA) -> None:
        self.qa = qa

    def __len__(self) -> int:
        return len(self.qa)

    def __getitem__(self, pair: tuple[int, int]) -> tuple[str, str, list[str]]:
        q, p = pair
        return self.qa.questions[q], self.qa.passages[p], self.qa.negatives[p]


class Collator:
    """Tokenises a batch: queries, passages and (``hard_negatives``) each row's first hard
    negative, as ``{"q": ..., "p": ..., "n": ...}``."""

    def __init__(self, tokenize: Tokenize, max_length: int, hard_negatives: bool = False) -> None:
        self.tokenize = tokenize
        self.max_length = max_length
        self.hard_negatives = hard_negatives

    def __call__(self, batch: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
        tok, n = self.tokenize, self.max_length
        out = {
            "q": tok([b[0] for b in batch], "query", n),
            "p": tok([b[1] for b in batch], "passage", n),
        }
        if self.hard_negatives:
            negs = [b[2][0] for b in batch if b[2]]
            if negs:
                out["n"] = tok(negs, "passage", n)
        return out
