//! Unit tests of the evaluator against plain definitions.

use super::*;
use crate::error::CoreError;

fn spec() -> Spec {
    Spec {
        recall_ks: vec![1, 2],
        map_k: 2,
        map_norm: MapNorm::R,
    }
}

/// Plain full-sort AP with sklearn's tie rule.
fn ap_ref(scores: &[f64], rel: &[bool]) -> f64 {
    let k = rel.iter().filter(|&&r| r).count() as f64;
    let mut total = 0.0;
    for (i, &s) in scores.iter().enumerate() {
        if !rel[i] {
            continue;
        }
        let n_ge = scores.iter().filter(|&&x| x >= s).count() as f64;
        let r_ge = scores
            .iter()
            .zip(rel)
            .filter(|(&x, &r)| r && x >= s)
            .count() as f64;
        total += r_ge / n_ge;
    }
    total / k
}

#[test]
fn ap_with_ties_matches_definition() {
    // Two languages: columns 0..3 and 3..5.
    let layout = Layout::new(&[0, 3, 5]).unwrap();
    let scores = vec![0.9, 0.5, 0.5, 0.5, 0.1, 0.2, 0.2, 0.9, 0.3, 0.2];
    let indptr = [0i64, 2, 3];
    let indices = [1i64, 3, 4];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let m = query_metrics(&scores, 2, 0, &rel, &layout, &spec()).unwrap();
    let r0 = [false, true, false, true, false];
    assert!((m.ap[0] - ap_ref(&scores[0..5], &r0)).abs() < 1e-15);
    // Row 0, language 0: relevant column 1 (0.5) tied with column 2: AP = 1/3.
    assert!((m.lang_ap[0] - 1.0 / 3.0).abs() < 1e-15);
    // Row 0, language 1: relevant column 3 (0.5) first among {0.5, 0.1}: AP = 1.
    assert_eq!(m.lang_ap[1], 1.0);
    // Ranks 2 and 2 (ties share the best rank): distance 0.
    assert_eq!(m.rank_distance[0], 0.0);
    // Row 1: relevant only in language 1; language 0 is NaN.
    assert!(m.lang_ap[2].is_nan());
    let r1 = [false, false, false, false, true];
    assert!((m.ap[1] - ap_ref(&scores[5..10], &r1)).abs() < 1e-15);
    // recall@1 of row 1 pooled: rank of column 4 (0.2) is 1 + #{0.9, 0.3} = 3.
    assert_eq!(m.recall[2], 0.0);
    assert_eq!(m.rank_distance[1], 0.0);
}

/// Deterministic pseudo-random values in [0, 1) (a 64-bit LCG).
pub(crate) fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn check_compact<T: Score + std::fmt::Debug>(vals: &[T], t: T) {
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let want: Vec<T> = vals.iter().copied().filter(|&x| !(x < t)).collect();
    let want_finite = vals.iter().all(|x| x.finite());
    let mut buf = vec![t; vals.len() + COMPACT_PAD];
    let (n, ok) = T::compact(vals, t, &mut buf);
    assert_eq!(ok, want_finite);
    assert_eq!(format!("{:?}", &buf[..n]), format!("{want:?}"));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("popcnt")
    {
        let mut buf = vec![t; vals.len() + COMPACT_PAD];
        // SAFETY: AVX-512F checked; `buf` has the padding.
        let (n, ok) = unsafe { T::compact_avx512(vals, t, &mut buf) };
        assert_eq!(ok, want_finite);
        assert_eq!(format!("{:?}", &buf[..n]), format!("{want:?}"));
    }
}

#[test]
fn compaction_keeps_exactly_the_scores_not_below_the_threshold() {
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
    for len in 0..70 {
        let mut v = lcg(len as u64, len);
        for x in v.iter_mut() {
            *x = *x * 2.0 - 1.0;
        }
        for t in [-2.0, -0.3, 0.0, 0.5, 2.0] {
            check_compact(&v, t);
            check_compact(&v.iter().map(|&x| x as f32).collect::<Vec<_>>(), t as f32);
        }
        // Each special value at each position (finiteness from the same pass, any lane).
        for pos in 0..len.min(20) {
            for sp in specials {
                let mut w = v.clone();
                w[pos] = sp;
                check_compact(&w, 0.1);
                check_compact(&w.iter().map(|&x| x as f32).collect::<Vec<_>>(), 0.1f32);
            }
        }
    }
}

#[test]
fn compacted_and_direct_counting_agree_with_the_definition() {
    // 3 languages of 37, 50 and 64 candidates; 40 questions whose relevant candidates
    // score high (compaction stays on) or at random (it switches off), with ties.
    let layout = Layout::new(&[0, 37, 87, 151]).unwrap();
    let n = 151;
    let mut scores = Vec::new();
    let mut indptr = vec![0i64];
    let mut indices = Vec::new();
    for q in 0..40u64 {
        let mut row: Vec<f64> = lcg(100 + q, n)
            .iter()
            .map(|x| (x * 64.0).floor() / 64.0)
            .collect();
        let rel: Vec<usize> = lcg(200 + q, 1 + (q as usize % 5))
            .iter()
            .map(|x| (x * n as f64) as usize)
            .collect();
        for &c in &rel {
            if q % 2 == 0 {
                row[c] = 0.9 + row[c] / 16.0;
            }
            indices.push(c as i64);
        }
        indptr.push(indices.len() as i64);
        scores.extend(row);
    }
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let m = query_metrics(&scores, 40, 0, &rel, &layout, &spec()).unwrap();
    for q in 0..40 {
        let row = &scores[q * n..(q + 1) * n];
        let mut is_rel = vec![false; n];
        for &c in &indices[indptr[q] as usize..indptr[q + 1] as usize] {
            is_rel[c as usize] = true;
        }
        assert!((m.ap[q] - ap_ref(row, &is_rel)).abs() < 1e-12, "row {q}");
        for l in 0..3 {
            let (a, b) = (layout.offsets[l], layout.offsets[l + 1]);
            if is_rel[a..b].iter().any(|&r| r) {
                let want = ap_ref(&row[a..b], &is_rel[a..b]);
                assert!(
                    (m.lang_ap[q * 3 + l] - want).abs() < 1e-12,
                    "row {q} lang {l}"
                );
            } else {
                assert!(m.lang_ap[q * 3 + l].is_nan());
            }
        }
    }
}

#[test]
fn non_finite_below_every_relevant_score_is_an_error() {
    // -inf and NaN far below the relevant score (dropped by compaction) are still found.
    let layout = Layout::new(&[0, 40]).unwrap();
    let indptr = [0i64, 1];
    let indices = [3i64];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    for bad in [f32::NEG_INFINITY, f32::NAN, f32::INFINITY] {
        let mut row = vec![0.0f32; 40];
        row[3] = 1.0;
        row[33] = bad;
        let err = query_metrics(&row, 1, 0, &rel, &layout, &spec()).unwrap_err();
        assert!(matches!(
            err,
            CoreError::NonFinite {
                row: 0,
                col: 33,
                ..
            }
        ));
    }
}

#[test]
fn no_recall_cutoffs_still_gives_every_question() {
    let layout = Layout::new(&[0, 2, 4]).unwrap();
    let scores: Vec<f64> = lcg(9, 40 * 4);
    let indptr: Vec<i64> = (0..=40).collect();
    let indices: Vec<i64> = (0..40).map(|i| i % 4).collect();
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let mut none = spec();
    none.recall_ks.clear();
    let a = query_metrics(&scores, 40, 0, &rel, &layout, &none).unwrap();
    let b = query_metrics(&scores, 40, 0, &rel, &layout, &spec()).unwrap();
    assert_eq!(a.ap, b.ap);
    assert_eq!(format!("{:?}", a.lang_ap), format!("{:?}", b.lang_ap));
    assert!(a.recall.is_empty() && a.lang_recall.is_empty());
}

#[test]
fn non_finite_is_an_error() {
    let layout = Layout::new(&[0, 2]).unwrap();
    let indptr = [0i64, 1];
    let indices = [0i64];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let err = query_metrics(&[0.1f32, f32::NAN], 1, 0, &rel, &layout, &spec()).unwrap_err();
    assert!(matches!(err, CoreError::NonFinite { row: 0, col: 1, .. }));
}

#[test]
fn bad_shapes_are_errors() {
    let layout = Layout::new(&[0, 2]).unwrap();
    let indptr = [0i64, 1];
    let indices = [5i64];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let err = query_metrics(&[0.1f64, 0.2], 1, 0, &rel, &layout, &spec()).unwrap_err();
    assert!(err.to_string().starts_with("relevance_indices"));
    let indices = [0i64];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let err = query_metrics(&[0.1f64, 0.2, 0.3], 1, 0, &rel, &layout, &spec()).unwrap_err();
    assert!(err.to_string().starts_with("scores"));
    assert!(Layout::new(&[0, 3, 2]).is_err());
    assert!(MapNorm::parse("bogus").is_err());
    assert_eq!(MapNorm::parse("min(k, R)").unwrap(), MapNorm::MinKR);
}

#[test]
fn aggregate_means_skip_empty_settings() {
    let layout = Layout::new(&[0, 1, 2]).unwrap();
    let scores = vec![0.9, 0.1, 0.2, 0.8];
    let indptr = [0i64, 1, 2];
    let indices = [0i64, 1];
    let rel = Relevance {
        indptr: &indptr,
        indices: &indices,
    };
    let m = query_metrics(&scores, 2, 0, &rel, &layout, &spec()).unwrap();
    let a = aggregate(&m.view(), &[0, 1]).unwrap();
    assert_eq!(a.pair_n, vec![1, 0, 0, 1]);
    assert!(a.pair_map[1].is_nan());
    assert_eq!(a.pair_map[0], 1.0);
    assert_eq!(a.multi_micro, 1.0);
    assert!(aggregate(&m.view(), &[0, 2]).is_err());
}

#[test]
fn avx2_compaction_equals_the_portable_loop() {
    #[cfg(target_arch = "x86_64")]
    {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt"))
        {
            return;
        }
        for len in 0..70usize {
            for seed in 0..6u64 {
                let mut s: Vec<f32> = lcg(seed * 131 + len as u64, len)
                    .iter()
                    .map(|&x| (x - 0.5) as f32)
                    .collect();
                if seed == 4 && len > 3 {
                    s[len / 2] = f32::NAN;
                }
                if seed == 5 && len > 9 {
                    s[len - 1] = f32::INFINITY;
                }
                let t = if seed == 3 { f32::NEG_INFINITY } else { 0.1 };
                let mut a = vec![0f32; len + COMPACT_PAD];
                let mut b = vec![0f32; len + COMPACT_PAD];
                let (na, fa) = <f32 as Score>::compact(&s, t, &mut a);
                // SAFETY: AVX2 and POPCNT checked above; buffers padded.
                let (nb, fb) = unsafe { <f32 as Score>::compact_avx2(&s, t, &mut b) };
                assert_eq!((na, fa), (nb, fb), "len {len} seed {seed}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a[..na]), bits(&b[..nb]), "len {len} seed {seed}");
            }
        }
    }
}
