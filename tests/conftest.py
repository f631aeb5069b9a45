"""Shared fixtures: the real data sets (../shared/data beside the repository) and their TF-IDF
score matrices, computed once per test run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybridrs
from hybridrs.models import TfidfEncoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
XQUAD = DATA / "xquad-r"
MLQA = DATA / "mlqa-r"


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.fail(f"real data missing: {path} (../shared/data must sit beside the repository)")
    return path


@pytest.fixture(scope="session")
def xquad() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(_need(XQUAD))


@pytest.fixture(scope="session")
def mlqa() -> hybridrs.RetrievalSet:
    return hybridrs.load_lareqa(_need(MLQA))


@pytest.fixture(scope="session")
def xquad_tfidf(xquad) -> np.ndarray:
    return TfidfEncoder().scores(xquad)


@pytest.fixture(scope="session")
def mlqa_tfidf(mlqa) -> np.ndarray:
    return TfidfEncoder().scores(mlqa)
