//! The task runner shared by the row kernel and the fused path: rows in parallel tasks,
//! each writing its own slices of the output.

use rayon::prelude::*;

use super::*;
use crate::error::{try_vec, CoreError, CoreResult};

/// Runs `f` with the calling thread as the only worker (a one-thread rayon pool made of it, kept
/// for the thread's life), so that the kernels' parallel loops run there: for callers that
/// already keep one task per core busy (say, a BLAS block and its counting per thread), where
/// the global pool's threads would only compete with them.
pub fn on_this_thread<R: Send>(f: impl FnOnce() -> CoreResult<R> + Send) -> CoreResult<R> {
    thread_local! {
        static POOL: std::cell::OnceCell<Result<rayon::ThreadPool, String>> =
            const { std::cell::OnceCell::new() };
    }
    POOL.with(|cell| {
        let pool = cell.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .map_err(|e| e.to_string())
        });
        match pool {
            Ok(p) => p.install(f),
            Err(e) => Err(CoreError::value(
                "single_thread",
                format!("no thread pool on this thread: {e}"),
            )),
        }
    })
}

/// The output slices of one parallel task: `rows()` consecutive questions.
pub(crate) struct TaskOut<'a> {
    n_langs: usize,
    n_ks: usize,
    n_rel: &'a mut [u32],
    ap: &'a mut [f64],
    ap_at_k: &'a mut [f64],
    recall: &'a mut [f64],
    rank_distance: &'a mut [f64],
    lang_ap: &'a mut [f64],
    lang_ap_at_k: &'a mut [f64],
    lang_recall: &'a mut [f64],
}

impl TaskOut<'_> {
    /// Number of questions of the task.
    pub(crate) fn rows(&self) -> usize {
        self.n_rel.len()
    }

    /// The outputs of the task's `i`-th question.
    pub(crate) fn sink(&mut self, i: usize) -> RowSink<'_> {
        let (nl, nk) = (self.n_langs, self.n_ks);
        RowSink {
            n_rel: &mut self.n_rel[i],
            ap: &mut self.ap[i],
            ap_at_k: &mut self.ap_at_k[i],
            rank_distance: &mut self.rank_distance[i],
            recall: slice_mut(self.recall, i, nk),
            lang_ap: slice_mut(self.lang_ap, i, nl),
            lang_ap_at_k: slice_mut(self.lang_ap_at_k, i, nl),
            lang_recall: slice_mut(self.lang_recall, i, nl * nk),
        }
    }
}

/// Allocates the metrics of `n_rows` questions and fills them in parallel tasks of
/// `rows_per_task` questions: `f(state, task, out)`, with one `init()` state per worker.
pub(crate) fn in_tasks<S, I, F>(
    n_rows: usize,
    n_langs: usize,
    n_ks: usize,
    rows_per_task: usize,
    init: I,
    f: F,
) -> CoreResult<QueryMetrics>
where
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut TaskOut<'_>) -> CoreResult<()> + Sync + Send,
{
    let field = "recall_at";
    let mut m = QueryMetrics {
        n_langs,
        n_ks,
        n_relevant: try_vec(field, &[n_rows], 0)?,
        ap: try_vec(field, &[n_rows], 0.0)?,
        ap_at_k: try_vec(field, &[n_rows], 0.0)?,
        // At least one slot a question, so that every output yields one chunk a task (an
        // empty vector would yield none and end the zip early); cut back below.
        recall: try_vec(field, &[n_rows, n_ks.max(1)], 0.0)?,
        rank_distance: try_vec(field, &[n_rows], 0.0)?,
        lang_ap: try_vec(field, &[n_rows, n_langs], 0.0)?,
        lang_ap_at_k: try_vec(field, &[n_rows, n_langs], 0.0)?,
        lang_recall: try_vec(field, &[n_rows, n_langs, n_ks.max(1)], 0.0)?,
    };
    let r = rows_per_task;
    (
        m.n_relevant.par_chunks_mut(r),
        m.ap.par_chunks_mut(r),
        m.ap_at_k.par_chunks_mut(r),
        m.recall.par_chunks_mut(r * n_ks.max(1)),
        m.rank_distance.par_chunks_mut(r),
        m.lang_ap.par_chunks_mut(r * n_langs.max(1)),
        m.lang_ap_at_k.par_chunks_mut(r * n_langs.max(1)),
        m.lang_recall.par_chunks_mut(r * (n_langs * n_ks).max(1)),
    )
        .into_par_iter()
        .enumerate()
        .try_for_each_init(init, |st, (task, chunk)| {
            let (n_rel, ap, ap_at_k, recall, rank_distance, lang_ap, lang_ap_at_k, lang_recall) =
                chunk;
            let mut out = TaskOut {
                n_langs,
                n_ks,
                n_rel,
                ap,
                ap_at_k,
                recall,
                rank_distance,
                lang_ap,
                lang_ap_at_k,
                lang_recall,
            };
            f(st, task, &mut out)
        })?;
    m.recall.truncate(n_rows * n_ks);
    m.lang_recall.truncate(n_rows * n_langs * n_ks);
    Ok(m)
}

/// The `i`-th run of `width` values (empty when `width` is 0).
fn slice_mut(v: &mut [f64], i: usize, width: usize) -> &mut [f64] {
    &mut v[i * width..(i + 1) * width]
}
