"""Training batches: the pair dataset the sampler's rows index, and the collator that
tokenises a batch (with the encoder's prefixes) in the DataLoader worker."""

from __future__ import annotations

from typing import Any

from ..data import ParallelQA
from ..models import Tokenize

__all__ = ["Collator", "PairDataset"]


#: One pair's texts: question, passage, the data's hard negatives of the passage, the mined
#: negatives of the question, and whether question and passage share a language.
Item = tuple[str, str, list[str], list[str], bool]


class PairDataset:
    """Maps a ``(question_row, passage_row)`` pair to its texts (DataLoader dataset).

    Args:
        qa: The training pairs.
        mined: Optional mined negatives per question row (passage rows of ``qa``).
    """

    def __init__(self, qa: ParallelQA, mined: list[list[int]] | None = None) -> None:
        self.qa = qa
        self.mined = mined

    def __len__(self) -> int:
        return len(self.qa)

    def __getitem__(self, pair: tuple[int, int]) -> Item:
        q, p = pair
        qa = self.qa
        mined = [qa.passages[j] for j in self.mined[q]] if self.mined is not None else []
        return qa.questions[q], qa.passages[p], qa.negatives[p], mined, qa.langs[q] == qa.langs[p]


class Collator:
    """Tokenises a batch: queries, passages and the extra candidates ``"n"`` (with
    ``hard_negatives``, each row's first hard negative from the data; then every mined
    negative), as ``{"q": ..., "p": ..., "n": ..., "mono": bool}``; ``mono``: every pair has
    question and passage in one language (a monolingual step)."""

    def __init__(self, tokenize: Tokenize, max_length: int, hard_negatives: bool = False) -> None:
        self.tokenize = tokenize
        self.max_length = max_length
        self.hard_negatives = hard_negatives

    def __call__(self, batch: list[Item]) -> dict[str, Any]:
        tok, n = self.tokenize, self.max_length
        out: dict[str, Any] = {
            "q": tok([b[0] for b in batch], "query", n),
            "p": tok([b[1] for b in batch], "passage", n),
        }
        negs = [b[2][0] for b in batch if b[2]] if self.hard_negatives else []
        negs += [t for b in batch for t in b[3]]
        if negs:
            out["n"] = tok(negs, "passage", n)
        out["mono"] = all(b[4] for b in batch)
        return out
