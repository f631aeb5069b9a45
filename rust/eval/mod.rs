//! Exact retrieval metrics over all language pairs in one pass over each score row.
//!
//! Layout: candidates are grouped by language, `lang_offsets[l]..lang_offsets[l + 1]` being
//! the columns of language `l`. Relevance is CSR over questions (`indptr`, `indices`).
//!
//! For one question with relevant candidates `r_1..r_k` (scores `t_1..t_k`) the kernel counts,
//! for every relevant `j` and every candidate language `l`, how many candidates of `l` score
//! `>= t_j` and `> t_j`. Every metric follows from those `2 k L` counts:
//!
//! * average precision, exactly as `sklearn.metrics.average_precision_score` (tied scores form
//!   one threshold step): `AP = 1/k * sum_j #{i : t_i >= t_j} / #{c : s_c >= t_j}`;
//! * rank of a relevant candidate: `1 + #{c : s_c > t_j}` (ties share the best rank);
//! * recall@K: share of relevant candidates whose rank is `<= K`;
//! * AP@K: the terms of AP whose tie-inclusive position `#{c : s_c >= t_j}` is `<= K`, divided by
//!   `k` (`MapNorm::R`, as trec_eval) or `min(K, k)` (`MapNorm::MinKR`); without ties this is
//!   the usual truncated AP.
//!
//! The monolingual / cross-lingual setting `(lq, lc)` restricts both the relevant set and the
//! counts to language `lc`; the pooled (multilingual) setting sums over languages. No row is
//! sorted, each row slice is read once from memory (the per-language slices stay in cache for the
//! `k` threshold passes), and rows run in parallel with rayon.

mod aggregate;
mod bias;
mod counting;
pub mod fused;
mod graded;
mod kernel;
mod shard;
mod tasks;
#[cfg(test)]
pub(crate) mod tests;
mod types;

pub use aggregate::{aggregate, Aggregate};
pub use bias::{bias_counts, BiasCounts};
pub use counting::{simd_level, simd_name, SIMD_AVX2, SIMD_AVX512, SIMD_PORTABLE};
pub use graded::{graded_metrics, GradedMetrics};
pub use kernel::query_metrics;
pub use shard::{bias_from_counts, metrics_from_counts, row_top_values, threshold_counts};
pub use tasks::on_this_thread;
pub use types::{
    Layout, MapNorm, QueryMetrics, QueryMetricsView, Relevance, Score, Spec, MAX_LANGS,
};

pub(crate) use counting::*;
pub(crate) use kernel::*;
pub(crate) use tasks::*;
pub(crate) use types::COMPACT_PAD;
