//! The thin PyO3 layer: converts numpy arrays (without copies) and delegates to the core, with
//! the GIL released for the long work. No logic lives here.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::codes::{self, IdOrder, Keys, Offsets};
use crate::error::CoreError;
use crate::eval;

use crate::pool::PairPool;
use crate::pystr::Read;
use crate::sampler::{AlphaSchedule, HybridSampler, SamplerConfig};
use crate::string_pool::pool_from_string_keys;

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        match e {
            CoreError::Memory { .. } => PyMemoryError::new_err(e.to_string()),
            _ => PyValueError::new_err(e.to_string()),
        }
    }
}

/// Runs `f` with the GIL released and maps core errors: the one place that detaches.
fn detached<T: Send, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Send + FnOnce() -> Result<T, CoreError>,
{
    py.detach(f).map_err(PyErr::from)
}

fn contiguous<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    field: &str,
) -> PyResult<&'a [T]> {
    // `as_slice` also accepts Fortran order, which would read columns as rows: require C order.
    let c_order = a.is_c_contiguous();
    a.as_slice().ok().filter(|_| c_order).ok_or_else(|| {
        PyValueError::new_err(format!(
            "{field}: must be a C-contiguous array (use numpy.ascontiguousarray)"
        ))
    })
}

fn i64_array<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<PyReadonlyArray1<'py, i64>> {
    obj.extract::<PyReadonlyArray1<'py, i64>>()
        .map_err(|_| PyTypeError::new_err(format!("{field}: expected a 1-d numpy array of int64")))
}

enum Scores<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

fn scores_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Scores<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, f32>>() {
        return Ok(Scores::F32(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray2<'py, f64>>() {
        return Ok(Scores::F64(a));
    }
    Err(PyTypeError::new_err(
        "scores: expected a 2-d numpy array of float32 or float64",
    ))
}

/// The arguments both evaluation entry points share: relevance (CSR), language layout, spec.
struct EvalArgs<'py> {
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i64>,
    offsets: PyReadonlyArray1<'py, i64>,
    spec: eval::Spec,
}

impl<'py> EvalArgs<'py> {
    /// The relevance and the layout alone (the metric settings unused: bias counts).
    fn relevance_only(
        indptr: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
        Self::new(indptr, indices, offsets, vec![], 1, "R")
    }

    fn new(
        relevance_indptr: &Bound<'py, PyAny>,
        relevance_indices: &Bound<'py, PyAny>,
        lang_offsets: &Bound<'py, PyAny>,
        recall_at: Vec<usize>,
        map_at: usize,
        map_norm: &str,
    ) -> PyResult<Self> {
        Ok(EvalArgs {
            indptr: i64_array(relevance_indptr, "relevance_indptr")?,
            indices: i64_array(relevance_indices, "relevance_indices")?,
            offsets: i64_array(lang_offsets, "lang_offsets")?,
            spec: eval::Spec {
                recall_ks: recall_at,
                map_k: map_at,
                map_norm: eval::MapNorm::parse(map_norm)?,
            },
        })
    }

    fn layout(&self) -> PyResult<eval::Layout> {
        Ok(eval::Layout::new(contiguous(
            &self.offsets,
            "lang_offsets",
        )?)?)
    }

    fn relevance(&self) -> PyResult<eval::Relevance<'_>> {
        Ok(eval::Relevance {
            indptr: contiguous(&self.indptr, "relevance_indptr")?,
            indices: contiguous(&self.indices, "relevance_indices")?,
        })
    }
}

/// Per-question metrics of a block of score rows; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (scores, first_row, relevance_indptr, relevance_indices, lang_offsets, recall_at, map_at, map_norm, *, single_thread=false))]
#[allow(clippy::too_many_arguments)]
fn query_metrics<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    first_row: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    lang_offsets: &Bound<'py, PyAny>,
    recall_at: Vec<usize>,
    map_at: usize,
    map_norm: &str,
    single_thread: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let args = EvalArgs::new(
        relevance_indptr,
        relevance_indices,
        lang_offsets,
        recall_at,
        map_at,
        map_norm,
    )?;
    let (spec, layout, rel) = (&args.spec, args.layout()?, args.relevance()?);
    let s = scores_array(scores)?;
    let one = single_thread;
    let m = match &s {
        Scores::F32(a) => score_block(py, a, first_row, &rel, &layout, spec, one)?,
        Scores::F64(a) => score_block(py, a, first_row, &rel, &layout, spec, one)?,
    };
    metrics_dict(py, m)
}

/// Per-question language-bias counts of a block of score rows; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (scores, first_row, relevance_indptr, relevance_indices, lang_offsets, top_k))]
fn bias_counts<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    first_row: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    lang_offsets: &Bound<'py, PyAny>,
    top_k: Vec<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let args = EvalArgs::relevance_only(relevance_indptr, relevance_indices, lang_offsets)?;
    let (layout, rel) = (args.layout()?, args.relevance()?);
    let s = scores_array(scores)?;
    let b = match &s {
        Scores::F32(a) => bias_block(py, a, first_row, &rel, &layout, &top_k)?,
        Scores::F64(a) => bias_block(py, a, first_row, &rel, &layout, &top_k)?,
    };
    bias_dict(py, b)
}

fn bias_dict(py: Python<'_>, b: eval::BiasCounts) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("max_rank", b.max_rank.into_pyarray(py))?;
    d.set_item("lang_min_rank", b.lang_min_rank.into_pyarray(py))?;
    d.set_item("top_counts", b.top_counts.into_pyarray(py))?;
    Ok(d)
}

/// Language-bias counts from counts summed over candidate shards; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (gt, ge_top, first_row, n_rows, relevance_indptr, relevance_indices, lang_offsets, top_k))]
#[allow(clippy::too_many_arguments)]
fn bias_from_counts<'py>(
    py: Python<'py>,
    gt: &Bound<'py, PyAny>,
    ge_top: &Bound<'py, PyAny>,
    first_row: usize,
    n_rows: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    lang_offsets: &Bound<'py, PyAny>,
    top_k: Vec<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let args = EvalArgs::relevance_only(relevance_indptr, relevance_indices, lang_offsets)?;
    let (layout, rel) = (args.layout()?, args.relevance()?);
    let (gt, ge_top) = (u32_array(gt, "gt")?, u32_array(ge_top, "ge_top")?);
    let (gt, ge_top) = (contiguous(&gt, "gt")?, contiguous(&ge_top, "ge_top")?);
    let b = detached(py, || {
        eval::bias_from_counts(first_row, n_rows, &rel, &layout, &top_k, gt, ge_top)
    })?;
    bias_dict(py, b)
}

fn bias_block<T: eval::Score + numpy::Element>(
    py: Python<'_>,
    a: &PyReadonlyArray2<'_, T>,
    first_row: usize,
    rel: &eval::Relevance<'_>,
    layout: &eval::Layout,
    top_k: &[usize],
) -> PyResult<eval::BiasCounts> {
    let (data, n) = checked_block(a, layout)?;
    detached(py, || {
        eval::bias_counts(data, n, first_row, rel, layout, top_k)
    })
}

/// The per-question metrics as a dict of numpy arrays (moved, not copied).
fn metrics_dict(py: Python<'_>, m: eval::QueryMetrics) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("n_relevant", m.n_relevant.into_pyarray(py))?;
    d.set_item("ap", m.ap.into_pyarray(py))?;
    d.set_item("ap_at_k", m.ap_at_k.into_pyarray(py))?;
    d.set_item("recall", m.recall.into_pyarray(py))?;
    d.set_item("rank_distance", m.rank_distance.into_pyarray(py))?;
    d.set_item("lang_ap", m.lang_ap.into_pyarray(py))?;
    d.set_item("lang_ap_at_k", m.lang_ap_at_k.into_pyarray(py))?;
    d.set_item("lang_recall", m.lang_recall.into_pyarray(py))?;
    Ok(d)
}

/// Per-question metrics straight from float32 embeddings (fused scoring and counting); see
/// `hybridrs._core.pyi`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn query_metrics_embeddings<'py>(
    py: Python<'py>,
    query_embeddings: &Bound<'py, PyAny>,
    candidate_embeddings: &Bound<'py, PyAny>,
    first_row: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    lang_offsets: &Bound<'py, PyAny>,
    recall_at: Vec<usize>,
    map_at: usize,
    map_norm: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let args = EvalArgs::new(
        relevance_indptr,
        relevance_indices,
        lang_offsets,
        recall_at,
        map_at,
        map_norm,
    )?;
    let (spec, layout, rel) = (&args.spec, args.layout()?, args.relevance()?);
    let (q, c, dim) = embedding_pair(query_embeddings, candidate_embeddings)?;
    let (qs, cs) = (
        contiguous(&q, "query_embeddings")?,
        contiguous(&c, "candidate_embeddings")?,
    );
    let m = detached(py, || {
        eval::fused::query_metrics_embeddings(qs, cs, dim, first_row, &rel, &layout, spec)
    })?;
    metrics_dict(py, m)
}

/// The five arrays of [`PyFusedShard::counts`].
type ShardArrays<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<u32>>,
);

/// A candidate shard packed once for the fused kernel; see `hybridrs._core.pyi`.
#[pyclass(name = "FusedShard", module = "hybridrs._core", frozen)]
struct PyFusedShard {
    inner: eval::fused::PackedShard,
}

#[pymethods]
impl PyFusedShard {
    #[new]
    fn new(
        py: Python<'_>,
        candidate_embeddings: &Bound<'_, PyAny>,
        lang_offsets: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let offsets = i64_array(lang_offsets, "lang_offsets")?;
        let layout = eval::Layout::new(contiguous(&offsets, "lang_offsets")?)?;
        let c = f32_matrix(candidate_embeddings, "candidate_embeddings")?;
        let dim = c.shape()[1];
        let cs = contiguous(&c, "candidate_embeddings")?;
        let inner = detached(py, || eval::fused::PackedShard::new(cs, dim, layout))?;
        Ok(PyFusedShard { inner })
    }

    /// Counts and largest scores of questions over the shard.
    #[pyo3(signature = (query_embeddings, first_row, thr_indptr, thresholds, k))]
    fn counts<'py>(
        &self,
        py: Python<'py>,
        query_embeddings: &Bound<'py, PyAny>,
        first_row: usize,
        thr_indptr: &Bound<'py, PyAny>,
        thresholds: &Bound<'py, PyAny>,
        k: usize,
    ) -> PyResult<ShardArrays<'py>> {
        let q = f32_matrix(query_embeddings, "query_embeddings")?;
        let dim = self.inner.dim();
        if q.shape()[1] != dim {
            return Err(PyValueError::new_err(format!(
                "query_embeddings: dimension {} differs from the candidates' {dim}",
                q.shape()[1]
            )));
        }
        let qs = contiguous(&q, "query_embeddings")?;
        let indptr = i64_array(thr_indptr, "thr_indptr")?;
        let indptr = contiguous(&indptr, "thr_indptr")?;
        let thr = thresholds
            .extract::<PyReadonlyArray1<'_, f32>>()
            .map_err(|_| {
                PyTypeError::new_err("thresholds: expected a 1-d numpy array of float32")
            })?;
        let thr = contiguous(&thr, "thresholds")?;
        let inner = &self.inner;
        let out = detached(py, || inner.counts(qs, first_row, indptr, thr, k))?;
        Ok((
            out.ge.into_pyarray(py),
            out.gt.into_pyarray(py),
            out.top.into_pyarray(py),
            out.top_lang.into_pyarray(py),
            out.top_ties.into_pyarray(py),
        ))
    }
}

/// Scores of (question, candidate) pairs exactly as the fused kernel computes them; see
/// `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (query_embeddings, candidate_embeddings, rows, cols))]
fn fused_scores_at<'py>(
    py: Python<'py>,
    query_embeddings: &Bound<'py, PyAny>,
    candidate_embeddings: &Bound<'py, PyAny>,
    rows: &Bound<'py, PyAny>,
    cols: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let (q, c, dim) = embedding_pair(query_embeddings, candidate_embeddings)?;
    let (qs, cs) = (
        contiguous(&q, "query_embeddings")?,
        contiguous(&c, "candidate_embeddings")?,
    );
    let rows = i64_array(rows, "rows")?;
    let cols = i64_array(cols, "cols")?;
    let (r, cc) = (contiguous(&rows, "rows")?, contiguous(&cols, "cols")?);
    let v = detached(py, || eval::fused::scores_at(qs, cs, dim, r, cc))?;
    Ok(v.into_pyarray(py))
}

/// Two float32 embedding matrices of one dimension, and that dimension.
fn embedding_pair<'py>(
    query_embeddings: &Bound<'py, PyAny>,
    candidate_embeddings: &Bound<'py, PyAny>,
) -> PyResult<(
    PyReadonlyArray2<'py, f32>,
    PyReadonlyArray2<'py, f32>,
    usize,
)> {
    let q = f32_matrix(query_embeddings, "query_embeddings")?;
    let c = f32_matrix(candidate_embeddings, "candidate_embeddings")?;
    let dim = q.shape()[1];
    if c.shape()[1] != dim {
        return Err(PyValueError::new_err(format!(
            "candidate_embeddings: dimension {} differs from query_embeddings' {dim}",
            c.shape()[1]
        )));
    }
    Ok((q, c, dim))
}

/// The `(ge, gt)` count arrays of [`threshold_counts`].
type CountPair<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>);

/// Per-language `>=` / `>` counts of a shard's score rows against thresholds; see
/// `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (scores, first_row, lang_offsets, thr_indptr, thresholds))]
fn threshold_counts<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    first_row: usize,
    lang_offsets: &Bound<'py, PyAny>,
    thr_indptr: &Bound<'py, PyAny>,
    thresholds: &Bound<'py, PyAny>,
) -> PyResult<CountPair<'py>> {
    let offsets = i64_array(lang_offsets, "lang_offsets")?;
    let layout = eval::Layout::new(contiguous(&offsets, "lang_offsets")?)?;
    let indptr = i64_array(thr_indptr, "thr_indptr")?;
    let indptr = contiguous(&indptr, "thr_indptr")?;
    let (ge, gt) = match scores_array(scores)? {
        Scores::F32(a) => shard_block(py, &a, first_row, &layout, indptr, thresholds)?,
        Scores::F64(a) => shard_block(py, &a, first_row, &layout, indptr, thresholds)?,
    };
    Ok((ge.into_pyarray(py), gt.into_pyarray(py)))
}

fn shard_block<T: eval::Score + numpy::Element>(
    py: Python<'_>,
    a: &PyReadonlyArray2<'_, T>,
    first_row: usize,
    layout: &eval::Layout,
    indptr: &[i64],
    thresholds: &Bound<'_, PyAny>,
) -> PyResult<(Vec<u32>, Vec<u32>)> {
    let (data, n) = checked_block(a, layout)?;
    let thr = thresholds
        .extract::<PyReadonlyArray1<'_, T>>()
        .map_err(|_| {
            PyTypeError::new_err(
                "thresholds: expected a 1-d numpy array of the scores' dtype (float32 or float64)",
            )
        })?;
    let thr = contiguous(&thr, "thresholds")?;
    detached(py, || {
        eval::threshold_counts(data, n, first_row, layout, indptr, thr)
    })
}

fn u32_array<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<PyReadonlyArray1<'py, u32>> {
    obj.extract::<PyReadonlyArray1<'py, u32>>()
        .map_err(|_| PyTypeError::new_err(format!("{field}: expected a 1-d numpy array of uint32")))
}

/// Per-question metrics from counts summed over candidate shards; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (thresholds, ge, gt, first_row, n_rows, relevance_indptr, relevance_indices, lang_offsets, recall_at, map_at, map_norm))]
#[allow(clippy::too_many_arguments)]
fn metrics_from_counts<'py>(
    py: Python<'py>,
    thresholds: &Bound<'py, PyAny>,
    ge: &Bound<'py, PyAny>,
    gt: &Bound<'py, PyAny>,
    first_row: usize,
    n_rows: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    lang_offsets: &Bound<'py, PyAny>,
    recall_at: Vec<usize>,
    map_at: usize,
    map_norm: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let args = EvalArgs::new(
        relevance_indptr,
        relevance_indices,
        lang_offsets,
        recall_at,
        map_at,
        map_norm,
    )?;
    let (spec, layout, rel) = (&args.spec, args.layout()?, args.relevance()?);
    let (ge, gt) = (u32_array(ge, "ge")?, u32_array(gt, "gt")?);
    let (ge, gt) = (contiguous(&ge, "ge")?, contiguous(&gt, "gt")?);
    let m = if let Ok(t) = thresholds.extract::<PyReadonlyArray1<'py, f32>>() {
        let t = contiguous(&t, "thresholds")?;
        detached(py, || {
            eval::metrics_from_counts(first_row, n_rows, &rel, &layout, t, ge, gt, spec)
        })?
    } else if let Ok(t) = thresholds.extract::<PyReadonlyArray1<'py, f64>>() {
        let t = contiguous(&t, "thresholds")?;
        detached(py, || {
            eval::metrics_from_counts(first_row, n_rows, &rel, &layout, t, ge, gt, spec)
        })?
    } else {
        return Err(PyTypeError::new_err(
            "thresholds: expected a 1-d numpy array of float32 or float64",
        ));
    };
    metrics_dict(py, m)
}

/// The `k` largest values of each score row, decreasing; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (scores, first_row, k))]
fn row_top_values<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    first_row: usize,
    k: usize,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match scores_array(scores)? {
        Scores::F32(a) => {
            let (n, c) = (a.shape()[0], a.shape()[1]);
            let data = contiguous(&a, "scores")?;
            let v = detached(py, || eval::row_top_values(data, n, first_row, c, k))?;
            v.into_pyarray(py).into_any()
        }
        Scores::F64(a) => {
            let (n, c) = (a.shape()[0], a.shape()[1]);
            let data = contiguous(&a, "scores")?;
            let v = detached(py, || eval::row_top_values(data, n, first_row, c, k))?;
            v.into_pyarray(py).into_any()
        }
    })
}

/// nDCG@k and recall@k (graded relevance) of a block of score rows; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (scores, first_row, relevance_indptr, relevance_indices, gains, ndcg_at, recall_at))]
#[allow(clippy::too_many_arguments)]
fn graded_metrics<'py>(
    py: Python<'py>,
    scores: &Bound<'py, PyAny>,
    first_row: usize,
    relevance_indptr: &Bound<'py, PyAny>,
    relevance_indices: &Bound<'py, PyAny>,
    gains: &Bound<'py, PyAny>,
    ndcg_at: usize,
    recall_at: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let indptr = i64_array(relevance_indptr, "relevance_indptr")?;
    let indices = i64_array(relevance_indices, "relevance_indices")?;
    let rel = eval::Relevance {
        indptr: contiguous(&indptr, "relevance_indptr")?,
        indices: contiguous(&indices, "relevance_indices")?,
    };
    let gains = gains
        .extract::<PyReadonlyArray1<'py, f64>>()
        .map_err(|_| PyTypeError::new_err("gains: expected a 1-d numpy array of float64"))?;
    let gains = contiguous(&gains, "gains")?;
    let m = match scores_array(scores)? {
        Scores::F32(a) => {
            let (n, c) = (a.shape()[0], a.shape()[1]);
            let data = contiguous(&a, "scores")?;
            detached(py, || {
                eval::graded_metrics(data, n, first_row, c, &rel, gains, ndcg_at, recall_at)
            })?
        }
        Scores::F64(a) => {
            let (n, c) = (a.shape()[0], a.shape()[1]);
            let data = contiguous(&a, "scores")?;
            detached(py, || {
                eval::graded_metrics(data, n, first_row, c, &rel, gains, ndcg_at, recall_at)
            })?
        }
    };
    let d = PyDict::new(py);
    d.set_item("ndcg", m.ndcg.into_pyarray(py))?;
    d.set_item("recall", m.recall.into_pyarray(py))?;
    Ok(d)
}

/// Whether the CPU can run `query_metrics_embeddings` (AVX2 or AVX-512, with FMA).
#[pyfunction]
fn fused_available() -> bool {
    eval::fused::available()
}

/// The fused path's microkernel here: "avx512", "avx2", or None (capped by HYBRIDRS_SIMD).
#[pyfunction]
fn fused_kernel() -> Option<&'static str> {
    eval::fused::kernel_level().map(eval::simd_name)
}

fn f32_matrix<'py>(obj: &Bound<'py, PyAny>, field: &str) -> PyResult<PyReadonlyArray2<'py, f32>> {
    obj.extract::<PyReadonlyArray2<'py, f32>>().map_err(|_| {
        PyTypeError::new_err(format!("{field}: expected a 2-d numpy array of float32"))
    })
}

/// Checks a score block's shape and runs the kernel on it with the GIL released: on the
/// extension's thread pool, or with `single_thread` on the calling thread alone (see
/// `eval::on_this_thread`).
fn score_block<T: eval::Score + numpy::Element>(
    py: Python<'_>,
    a: &PyReadonlyArray2<'_, T>,
    first_row: usize,
    rel: &eval::Relevance<'_>,
    layout: &eval::Layout,
    spec: &eval::Spec,
    single_thread: bool,
) -> PyResult<eval::QueryMetrics> {
    let (data, n) = checked_block(a, layout)?;
    let run = || eval::query_metrics(data, n, first_row, rel, layout, spec);
    detached(py, || {
        if single_thread {
            eval::on_this_thread(run)
        } else {
            run()
        }
    })
}

/// A score block's values (C order) and rows, its columns checked against the layout.
fn checked_block<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray2<'_, T>,
    layout: &eval::Layout,
) -> PyResult<(&'a [T], usize)> {
    let shape = a.shape();
    check_cols(shape, layout.n_candidates())?;
    Ok((contiguous(a, "scores")?, shape[0]))
}

fn check_cols(shape: &[usize], n_candidates: usize) -> PyResult<()> {
    if shape[1] != n_candidates {
        return Err(PyValueError::new_err(format!(
            "scores: has {} columns but the data set has {n_candidates} candidates",
            shape[1]
        )));
    }
    Ok(())
}

/// One float64 array of the per-question metrics dict, or an error naming the key.
fn metric<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<PyReadonlyArray1<'py, f64>> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("per_query: missing key {key:?}")))?
        .extract::<PyReadonlyArray1<'py, f64>>()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "per_query[{key:?}]: expected a 1-d numpy array of float64"
            ))
        })
}

/// Per-setting means of per-question metrics; see `hybridrs._core.pyi`.
#[pyfunction]
#[pyo3(signature = (per_query, query_lang, n_langs, n_ks))]
fn aggregate<'py>(
    py: Python<'py>,
    per_query: &Bound<'py, PyDict>,
    query_lang: &Bound<'py, PyAny>,
    n_langs: usize,
    n_ks: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let ql = i64_array(query_lang, "query_lang")?;
    let arrays = [
        metric(per_query, "ap")?,
        metric(per_query, "ap_at_k")?,
        metric(per_query, "recall")?,
        metric(per_query, "rank_distance")?,
        metric(per_query, "lang_ap")?,
        metric(per_query, "lang_ap_at_k")?,
        metric(per_query, "lang_recall")?,
    ];
    let [ap, ap_at_k, recall, rank_distance, lang_ap, lang_ap_at_k, lang_recall] = &arrays;
    let view = eval::QueryMetricsView {
        n_langs,
        n_ks,
        ap: contiguous(ap, "ap")?,
        ap_at_k: contiguous(ap_at_k, "ap_at_k")?,
        recall: contiguous(recall, "recall")?,
        rank_distance: contiguous(rank_distance, "rank_distance")?,
        lang_ap: contiguous(lang_ap, "lang_ap")?,
        lang_ap_at_k: contiguous(lang_ap_at_k, "lang_ap_at_k")?,
        lang_recall: contiguous(lang_recall, "lang_recall")?,
    };
    let qls = contiguous(&ql, "query_lang")?;
    let a = detached(py, || eval::aggregate(&view, qls))?;
    let d = PyDict::new(py);
    d.set_item("pair_n", a.pair_n.into_pyarray(py))?;
    d.set_item("pair_map", a.pair_map.into_pyarray(py))?;
    d.set_item("pair_map_at_k", a.pair_map_at_k.into_pyarray(py))?;
    d.set_item("pair_recall", a.pair_recall.into_pyarray(py))?;
    d.set_item("multi_n", a.multi_n.into_pyarray(py))?;
    d.set_item("multi_map", a.multi_map.into_pyarray(py))?;
    d.set_item("multi_map_at_k", a.multi_map_at_k.into_pyarray(py))?;
    d.set_item("multi_recall", a.multi_recall.into_pyarray(py))?;
    d.set_item("rank_distance", a.rank_distance.into_pyarray(py))?;
    d.set_item("multi_micro", a.multi_micro)?;
    Ok(d)
}

/// A pool of parallel rows grouped by question id; see `hybridrs._core.pyi`.
#[pyclass(name = "PairPool", module = "hybridrs._core", frozen)]
struct PyPairPool {
    inner: PairPool,
}

#[pymethods]
impl PyPairPool {
    /// Builds a pool from int64 group ids and int64 language codes `0..n_langs`.
    #[staticmethod]
    fn from_codes(
        py: Python<'_>,
        group_ids: &Bound<'_, PyAny>,
        langs: &Bound<'_, PyAny>,
        n_langs: usize,
    ) -> PyResult<Self> {
        let g = i64_array(group_ids, "group_ids")?;
        let l = i64_array(langs, "langs")?;
        let (gs, ls) = (contiguous(&g, "group_ids")?, contiguous(&l, "langs")?);
        let inner = detached(py, || PairPool::from_arrays(gs, ls, n_langs))?;
        Ok(PyPairPool { inner })
    }

    /// Builds a pool from dense uint32 codes (string ids give them): groups `0..n_groups`, each
    /// used, and languages `0..n_langs`. The same pool as `from_codes`, without sorting.
    #[staticmethod]
    fn from_dense(
        py: Python<'_>,
        group_codes: PyReadonlyArray1<'_, u32>,
        n_groups: usize,
        lang_codes: PyReadonlyArray1<'_, u32>,
        n_langs: usize,
    ) -> PyResult<Self> {
        let (gs, ls) = (
            contiguous(&group_codes, "group_ids")?,
            contiguous(&lang_codes, "langs")?,
        );
        let inner = detached(py, || PairPool::from_dense(gs, n_groups, ls, n_langs))?;
        Ok(PyPairPool { inner })
    }

    /// The pool of string group ids and string languages, each a layout spec (`("fixed",
    /// data, width, unit)`, `("offsets", data, offsets)`, `("list", items)` or `("objects",
    /// array)`), with the first row of each language, groups and languages numbered in sorted
    /// order (each input read once, whatever the length of its strings).
    #[staticmethod]
    fn from_strings<'py>(
        py: Python<'py>,
        groups: &Bound<'py, PyAny>,
        langs: &Bound<'py, PyAny>,
    ) -> PyResult<(Self, Bound<'py, PyArray1<u32>>)> {
        // short ASCII `str` ids and codes in lists or object arrays: read in place, no copy
        if let Some((inner, first)) = crate::pystr::pool_from_str_objects(groups, langs) {
            return Ok((PyPairPool { inner }, first.into_pyarray(py)));
        }
        let (gs, ls) = (
            KeySrc::from_spec(groups, "group_ids")?,
            KeySrc::from_spec(langs, "langs")?,
        );
        let (gk, lk) = (gs.keys("group_ids")?, ls.keys("langs")?);
        let (inner, first) = detached(py, || pool_from_string_keys(&gk, &lk))?;
        Ok((PyPairPool { inner }, first.into_pyarray(py)))
    }

    /// A new pool keeping the language codes where `keep` is true and the groups with at least
    /// `min_langs` of them.
    #[pyo3(signature = (keep, min_langs))]
    fn filter(&self, py: Python<'_>, keep: Option<Vec<bool>>, min_langs: usize) -> PyResult<Self> {
        let inner = detached(py, || self.inner.filter(keep.as_deref(), min_langs))?;
        Ok(PyPairPool { inner })
    }

    /// Counts of groups, rows and pairs.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("groups", s.groups)?;
        d.set_item("rows", s.rows)?;
        d.set_item("mono_pairs", s.mono_pairs)?;
        d.set_item("cross_pairs", s.cross_pairs)?;
        d.set_item("rows_per_lang", s.rows_per_lang.into_pyarray(py))?;
        d.set_item("groups_by_size", s.groups_by_size.into_pyarray(py))?;
        d.set_item("pair_counts", s.pair_counts.into_pyarray(py))?;
        Ok(d)
    }

    /// (rows, language codes) of group `g`.
    fn group(&self, g: usize) -> PyResult<(Vec<u32>, Vec<u8>)> {
        if g >= self.inner.n_groups() {
            return Err(PyValueError::new_err(format!(
                "g: group {g} out of range 0..{}",
                self.inner.n_groups()
            )));
        }
        let (r, l) = self.inner.group(g);
        Ok((r.to_vec(), l.to_vec()))
    }

    #[getter]
    fn n_groups(&self) -> usize {
        self.inner.n_groups()
    }

    #[getter]
    fn n_rows(&self) -> usize {
        self.inner.n_rows()
    }

    #[getter]
    fn n_langs(&self) -> usize {
        self.inner.n_langs()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }
}

/// The hybrid batch sampler's planner; see `hybridrs._core.pyi`.
#[pyclass(name = "HybridSampler", module = "hybridrs._core", frozen)]
struct PySampler {
    inner: HybridSampler,
}

#[pymethods]
impl PySampler {
    #[new]
    #[pyo3(signature = (pool, batch_size, world_size, alpha, seed, lang_weights, drop_last, schedule="constant", alpha_end=None, total_steps=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        pool: &PyPairPool,
        batch_size: usize,
        world_size: usize,
        alpha: f64,
        seed: u64,
        lang_weights: Vec<f64>,
        drop_last: bool,
        schedule: &str,
        alpha_end: Option<f64>,
        total_steps: u64,
    ) -> PyResult<Self> {
        let alpha_end = alpha_end.unwrap_or(alpha);
        let schedule = match schedule {
            "constant" => AlphaSchedule::Constant,
            "linear" => AlphaSchedule::Linear {
                alpha_end,
                total_steps,
            },
            "triangle" => AlphaSchedule::Triangle {
                alpha_end,
                total_steps,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "alpha_schedule: must be 'constant', 'linear' or 'triangle', got {other:?}"
                )))
            }
        };
        let cfg = SamplerConfig {
            batch_size,
            world_size,
            alpha,
            schedule,
            seed,
            lang_weights,
            drop_last,
        };
        Ok(PySampler {
            inner: HybridSampler::new(pool.inner.clone(), cfg)?,
        })
    }

    #[getter]
    fn steps(&self) -> usize {
        self.inner.steps()
    }

    /// The probability of a monolingual step at global step `t`.
    fn alpha_at(&self, t: u64) -> f64 {
        self.inner.alpha_at(t)
    }

    #[getter]
    fn skipped_langs(&self) -> Vec<usize> {
        self.inner.skipped_langs().to_vec()
    }

    /// Plans one epoch: `modes`, `q_rows`, `p_rows` (steps x global batch) and `stats`.
    fn plan<'py>(&self, py: Python<'py>, epoch: u64) -> PyResult<Bound<'py, PyDict>> {
        let p = detached(py, || Ok(self.inner.plan(epoch)))?;
        let d = PyDict::new(py);
        d.set_item("global_batch", p.global_batch)?;
        d.set_item("modes", p.modes.into_pyarray(py))?;
        d.set_item("q_rows", p.q_rows.into_pyarray(py))?;
        d.set_item("p_rows", p.p_rows.into_pyarray(py))?;
        let st = PyDict::new(py);
        st.set_item("steps", p.stats.steps)?;
        st.set_item("mono_steps", p.stats.mono_steps)?;
        st.set_item("cross_steps", p.stats.cross_steps)?;
        st.set_item("eligible_groups", p.stats.eligible_groups)?;
        st.set_item("groups_used", p.stats.groups_used)?;
        st.set_item("groups_unused", p.stats.groups_unused)?;
        st.set_item("reused_slots", p.stats.reused_slots)?;
        d.set_item("stats", st)?;
        Ok(d)
    }
}

/// The SIMD build the counting kernels run here: "avx512", "avx2" or "portable" (capped by
/// the environment variable HYBRIDRS_SIMD, read once).
#[pyfunction]
fn simd_level() -> &'static str {
    eval::simd_name(eval::simd_level())
}

// -- string ids ---------------------------------------------------------------------------------

fn id_field(field: &str) -> &'static str {
    match field {
        "group_ids" => "group_ids",
        "langs" => "langs",
        _ => "ids",
    }
}

fn id_order(order: &str) -> PyResult<IdOrder> {
    match order {
        "sorted" => Ok(IdOrder::Sorted),
        "first_seen" => Ok(IdOrder::FirstSeen),
        other => Err(PyValueError::new_err(format!(
            "order: must be 'sorted' or 'first_seen', got {other:?}"
        ))),
    }
}

type CodesOut<'py> = (
    Bound<'py, numpy::PyArray1<u32>>,
    Bound<'py, numpy::PyArray1<u32>>,
);

/// Strings handed over from Python, borrowed where they can be: numpy fixed-width cells, UTF-8
/// data with int32 or int64 offsets (pyarrow's layout), or a list's strings copied once.
enum KeySrc<'py> {
    Fixed(PyReadonlyArray1<'py, u8>, usize, usize),
    Off32(PyReadonlyArray1<'py, u8>, PyReadonlyArray1<'py, i32>),
    Off64(PyReadonlyArray1<'py, u8>, PyReadonlyArray1<'py, i64>),
    Owned(Vec<u8>, Vec<i64>),
    /// A list's short strings copied into cells of this width (bytes, zero-padded).
    Cells(Vec<u8>, usize),
}

/// The UTF-8 bytes of item `i` of `list` when it is a plain `str` (not a subclass), read in
/// place with two calls and no reference counting (`PyList_GetItem` borrows,
/// `PyUnicode_AsUTF8AndSize` gives CPython's own buffer); `None` for anything else, or text
/// that does not encode (its error cleared: the caller's checked path reports it).
#[inline]
fn exact_str_utf8<'a>(list: &'a Bound<'_, PyList>, i: usize) -> Option<&'a [u8]> {
    use pyo3::ffi;
    let at = ffi::Py_ssize_t::try_from(i).ok()?;
    // SAFETY: the GIL is held (`list` is bound); `PyList_GetItem` returns a borrowed reference
    // (or null for an index out of range, with an error set, cleared below) that `list` keeps
    // alive; the type is compared by address with `str` itself.
    unsafe {
        let item = ffi::PyList_GetItem(list.as_ptr(), at);
        if item.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        if ffi::Py_TYPE(item) != std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            return None;
        }
        let mut size: ffi::Py_ssize_t = 0;
        let p = ffi::PyUnicode_AsUTF8AndSize(item, &mut size);
        if p.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        // the buffer lives as long as the string, which the list holds; the caller copies it
        // before any Python code can run
        Some(std::slice::from_raw_parts(
            p.cast::<u8>(),
            usize::try_from(size).ok()?,
        ))
    }
}

impl<'py> KeySrc<'py> {
    fn offsets(
        data: PyReadonlyArray1<'py, u8>,
        offsets: &Bound<'py, PyAny>,
        f: &'static str,
    ) -> PyResult<Self> {
        if let Ok(o) = offsets.extract::<PyReadonlyArray1<'py, i32>>() {
            return Ok(KeySrc::Off32(data, o));
        }
        let o = offsets
            .extract::<PyReadonlyArray1<'py, i64>>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "{f}: offsets must be a 1-d numpy array of int32 or int64"
                ))
            })?;
        Ok(KeySrc::Off64(data, o))
    }

    /// A Python list (or other sequence) of `str`: the strings' UTF-8 bytes (read in place:
    /// CPython keeps them beside an ASCII string's characters) copied once into one buffer, no
    /// Python object created per row.
    fn list(items: &Bound<'py, PyAny>, f: &'static str) -> PyResult<Self> {
        let mut data: Vec<u8> = Vec::new();
        let mut offsets: Vec<i64> = Vec::with_capacity(items.len().unwrap_or(0) + 1);
        offsets.push(0);
        let push = |data: &mut Vec<u8>,
                    offsets: &mut Vec<i64>,
                    i: usize,
                    item: &Bound<'py, PyAny>|
         -> PyResult<()> {
            let s = item.cast::<PyString>().map_err(|_| {
                let shown = item
                    .repr()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|_| "?".into());
                PyTypeError::new_err(format!(
                    "{f}: row {i} is {shown}; expected a non-empty string (str)"
                ))
            })?;
            // a borrowed view (PyUnicode_AsUTF8AndSize, in the limited API since Python 3.10)
            let text = s.to_str().map_err(|e| {
                PyValueError::new_err(format!("{f}: row {i} is not valid text: {e}"))
            })?;
            data.extend_from_slice(text.as_bytes());
            offsets.push(data.len() as i64);
            Ok(())
        };
        if let Ok(list) = items.cast::<PyList>() {
            // plain ASCII `str` (ids, language codes): read by all cores, no call per row
            if let Some(read) = crate::pystr::read_ascii(list) {
                return KeySrc::owned(read);
            }
            for i in 0..list.len() {
                if let Some(text) = exact_str_utf8(list, i) {
                    data.extend_from_slice(text);
                    offsets.push(data.len() as i64);
                } else {
                    // anything but a plain `str` (or text that does not encode): the checked way
                    push(&mut data, &mut offsets, i, &list.get_item(i)?)?;
                }
            }
        } else {
            if let Ok(tuple) = items.cast::<PyTuple>() {
                if let Some(read) = crate::pystr::read_ascii_tuple(tuple) {
                    return KeySrc::owned(read);
                }
            }
            for (i, item) in items.try_iter()?.enumerate() {
                push(&mut data, &mut offsets, i, &item?)?;
            }
        }
        Ok(KeySrc::Owned(data, offsets))
    }

    /// What [`crate::pystr`] read, owned.
    fn owned(read: Read) -> PyResult<Self> {
        Ok(match read {
            Read::Cells(data, width) => KeySrc::Cells(data, width),
            Read::Chunks(parts) => {
                let (data, offsets) = codes::join_chunks(&parts)?;
                KeySrc::Owned(data, offsets)
            }
        })
    }

    /// A 1-d numpy object array of `str`: its item pointers read in place like a list's (no
    /// list made), else its `tolist()` the checked way.
    fn objects(arr: &Bound<'py, PyAny>, f: &'static str) -> PyResult<Self> {
        if let Ok(a) = arr.extract::<PyReadonlyArray1<'py, Py<PyAny>>>() {
            if let Ok(items) = a.as_slice() {
                if let Some(read) = crate::pystr::read_object_array(arr.py(), items) {
                    return KeySrc::owned(read);
                }
            }
        }
        KeySrc::list(&arr.call_method0("tolist")?, f)
    }

    /// From a spec tuple: `("fixed", data, width, unit)`, `("offsets", data, offsets)`,
    /// `("list", items)` or `("objects", array)`.
    fn from_spec(spec: &Bound<'py, PyAny>, f: &'static str) -> PyResult<Self> {
        let bad = || {
            let head = spec
                .get_item(0)
                .and_then(|k| k.repr())
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".into());
            PyValueError::new_err(format!(
                "{f}: a string layout is (\"fixed\", data, width, unit), (\"offsets\", data, \
                 offsets), (\"list\", items) or (\"objects\", array); got {} items starting with {head}",
                spec.len().unwrap_or(0)
            ))
        };
        let kind: String = spec
            .get_item(0)
            .and_then(|k| k.extract())
            .map_err(|_| bad())?;
        let items = match kind.as_str() {
            "fixed" => 4,
            "offsets" => 3,
            "list" | "objects" => 2,
            _ => 0,
        };
        if spec.len().ok() != Some(items) {
            return Err(bad());
        }
        match kind.as_str() {
            "fixed" => Ok(KeySrc::Fixed(
                spec.get_item(1)?.extract()?,
                spec.get_item(2)?.extract()?,
                spec.get_item(3)?.extract()?,
            )),
            "offsets" => KeySrc::offsets(spec.get_item(1)?.extract()?, &spec.get_item(2)?, f),
            "list" => KeySrc::list(&spec.get_item(1)?, f),
            "objects" => KeySrc::objects(&spec.get_item(1)?, f),
            _ => Err(bad()),
        }
    }

    fn keys(&self, f: &'static str) -> PyResult<Keys<'_>> {
        Ok(match self {
            KeySrc::Fixed(data, width, unit) => Keys::Fixed {
                data: contiguous(data, f)?,
                width: *width,
                unit: *unit,
            },
            KeySrc::Off32(data, o) => Keys::Offsets {
                data: contiguous(data, f)?,
                offsets: Offsets::I32(contiguous(o, f)?),
            },
            KeySrc::Off64(data, o) => Keys::Offsets {
                data: contiguous(data, f)?,
                offsets: Offsets::I64(contiguous(o, f)?),
            },
            KeySrc::Owned(data, o) => Keys::Offsets {
                data,
                offsets: Offsets::I64(o),
            },
            KeySrc::Cells(data, width) => Keys::Fixed {
                data,
                width: *width,
                unit: 1,
            },
        })
    }

    fn codes(&self, py: Python<'py>, order: &str, f: &'static str) -> PyResult<CodesOut<'py>> {
        let (keys, order) = (self.keys(f)?, id_order(order)?);
        let c = detached(py, || codes::string_codes(&keys, order, f))?;
        Ok((c.codes.into_pyarray(py), c.first_rows.into_pyarray(py)))
    }
}

/// Dense codes of strings given as a layout spec: `("fixed", data, width, unit)` (a numpy
/// `<U` array, unit 4, or `S` array, unit 1, viewed as bytes), `("offsets", data, offsets)`
/// (UTF-8 data and `n + 1` int32 or int64 offsets: pyarrow's layout, read as it is) or
/// `("list", items)` (a sequence of `str`) or `("objects", array)` (a 1-d numpy object array of
/// `str`). Returns (uint32 codes, first row of each code).
#[pyfunction]
#[pyo3(signature = (field, spec, order))]
fn string_codes<'py>(
    py: Python<'py>,
    field: &str,
    spec: &Bound<'py, PyAny>,
    order: &str,
) -> PyResult<CodesOut<'py>> {
    let f = id_field(field);
    id_order(order)?; // before any copy
    KeySrc::from_spec(spec, f)?.codes(py, order, f)
}

/// The extension module `hybridrs._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(query_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(bias_counts, m)?)?;
    m.add_function(wrap_pyfunction!(query_metrics_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(fused_available, m)?)?;
    m.add_function(wrap_pyfunction!(fused_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(threshold_counts, m)?)?;
    m.add_function(wrap_pyfunction!(fused_scores_at, m)?)?;
    m.add_function(wrap_pyfunction!(graded_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(row_top_values, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_from_counts, m)?)?;
    m.add_function(wrap_pyfunction!(bias_from_counts, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(string_codes, m)?)?;
    m.add_class::<PyPairPool>()?;
    m.add_class::<PyFusedShard>()?;
    m.add_class::<PySampler>()?;
    Ok(())
}
