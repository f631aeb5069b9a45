"""A character n-gram TF-IDF baseline: no model needed, strong monolingually, near zero across
scripts."""

from __future__ import annotations

import numpy as np

from ..data import RetrievalSet

__all__ = ["TfidfEncoder", "candidate_texts"]


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

            starts = tqdm(starts, desc="tf-idf scores", unit="block", leave=False)
        for a in starts:
            out[a : a + step] = (q[a : a + step] @ ct).toarray()
        return out
