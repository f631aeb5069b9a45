//! Aggregation: per-question metrics averaged into per-setting means.

use super::*;
use crate::error::{try_vec, CoreError, CoreResult};

/// Means per setting. NaN where a setting has no question (its count is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Number of languages L.
    pub n_langs: usize,
    /// Number of recall cutoffs.
    pub n_ks: usize,
    /// Questions per (query language, candidate language), `L x L`.
    pub pair_n: Vec<u64>,
    /// mAP per pair, `L x L`.
    pub pair_map: Vec<f64>,
    /// mAP@K per pair, `L x L`.
    pub pair_map_at_k: Vec<f64>,
    /// Mean recall per pair, `L x L x n_ks`.
    pub pair_recall: Vec<f64>,
    /// Questions per query language in the pooled setting.
    pub multi_n: Vec<u64>,
    /// Pooled mAP per query language.
    pub multi_map: Vec<f64>,
    /// Pooled mAP@K per query language.
    pub multi_map_at_k: Vec<f64>,
    /// Pooled recall per query language, `L x n_ks`.
    pub multi_recall: Vec<f64>,
    /// Mean rank distance per query language.
    pub rank_distance: Vec<f64>,
    /// Pooled mAP over all questions (micro average).
    pub multi_micro: f64,
}

fn mean_into(sum: &mut [f64], n: &[u64]) {
    for (s, &c) in sum.iter_mut().zip(n) {
        *s = if c == 0 { f64::NAN } else { *s / c as f64 };
    }
}

/// Averages per-question metrics into per-setting means. `query_lang[i]` is the language index
/// (`0..L`) of question `i`.
pub fn aggregate(m: &QueryMetricsView<'_>, query_lang: &[i64]) -> CoreResult<Aggregate> {
    let (nl, nk) = (m.n_langs, m.n_ks);
    let n = query_lang.len();
    if n == 0 {
        return Err(CoreError::value("query_lang", "no questions to aggregate"));
    }
    if nl == 0 || nl > MAX_LANGS {
        return Err(CoreError::value(
            "n_langs",
            format!("must be in 1..={MAX_LANGS}, got {nl}"),
        ));
    }
    let checks: [(&'static str, usize, usize); 7] = [
        ("ap", m.ap.len(), n),
        ("ap_at_k", m.ap_at_k.len(), n),
        ("recall", m.recall.len(), n.saturating_mul(nk)),
        ("rank_distance", m.rank_distance.len(), n),
        ("lang_ap", m.lang_ap.len(), n.saturating_mul(nl)),
        ("lang_ap_at_k", m.lang_ap_at_k.len(), n.saturating_mul(nl)),
        (
            "lang_recall",
            m.lang_recall.len(),
            n.saturating_mul(nl).saturating_mul(nk),
        ),
    ];
    for (field, got, want) in checks {
        if got != want {
            return Err(CoreError::shape(
                field,
                format!("has {got} values, expected {want} for {n} questions"),
            ));
        }
    }
    let f = "recall_at";
    let mut a = Aggregate {
        n_langs: nl,
        n_ks: nk,
        pair_n: try_vec(f, &[nl, nl], 0)?,
        pair_map: try_vec(f, &[nl, nl], 0.0)?,
        pair_map_at_k: try_vec(f, &[nl, nl], 0.0)?,
        pair_recall: try_vec(f, &[nl, nl, nk], 0.0)?,
        multi_n: try_vec(f, &[nl], 0)?,
        multi_map: try_vec(f, &[nl], 0.0)?,
        multi_map_at_k: try_vec(f, &[nl], 0.0)?,
        multi_recall: try_vec(f, &[nl, nk], 0.0)?,
        rank_distance: try_vec(f, &[nl], 0.0)?,
        multi_micro: 0.0,
    };
    let mut micro_n = 0u64;
    for (i, &lq) in query_lang.iter().enumerate() {
        if lq < 0 || lq as usize >= nl {
            return Err(CoreError::value(
                "query_lang",
                format!("entry {i} is {lq}, outside 0..{nl}"),
            ));
        }
        let lq = lq as usize;
        if !m.ap[i].is_nan() {
            a.multi_n[lq] += 1;
            a.multi_map[lq] += m.ap[i];
            a.multi_map_at_k[lq] += m.ap_at_k[i];
            a.rank_distance[lq] += m.rank_distance[i];
            for k in 0..nk {
                a.multi_recall[lq * nk + k] += m.recall[i * nk + k];
            }
            a.multi_micro += m.ap[i];
            micro_n += 1;
        }
        for lc in 0..nl {
            let v = m.lang_ap[i * nl + lc];
            if v.is_nan() {
                continue;
            }
            let p = lq * nl + lc;
            a.pair_n[p] += 1;
            a.pair_map[p] += v;
            a.pair_map_at_k[p] += m.lang_ap_at_k[i * nl + lc];
            for k in 0..nk {
                a.pair_recall[p * nk + k] += m.lang_recall[(i * nl + lc) * nk + k];
            }
        }
    }
    mean_into(&mut a.pair_map, &a.pair_n);
    mean_into(&mut a.pair_map_at_k, &a.pair_n);
    let pair_n_k: Vec<u64> = a
        .pair_n
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, nk))
        .collect();
    mean_into(&mut a.pair_recall, &pair_n_k);
    mean_into(&mut a.multi_map, &a.multi_n);
    mean_into(&mut a.multi_map_at_k, &a.multi_n);
    mean_into(&mut a.rank_distance, &a.multi_n);
    let multi_n_k: Vec<u64> = a
        .multi_n
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, nk))
        .collect();
    mean_into(&mut a.multi_recall, &multi_n_k);
    a.multi_micro = if micro_n == 0 {
        f64::NAN
    } else {
        a.multi_micro / micro_n as f64
    };
    Ok(a)
}
