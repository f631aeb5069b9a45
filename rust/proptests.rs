//! Property tests of the size arithmetic that input reaches (proptest): the sampler's global
//! batch and the evaluator's output sizes never wrap, panic or abort; they give a result or a
//! typed error.

use proptest::prelude::*;

use crate::error::{try_vec, CoreError};
use crate::eval::{query_metrics, Layout, MapNorm, Relevance, Spec};
use crate::pool::PairPool;
use crate::sampler::{HybridSampler, SamplerConfig};

fn is_input_error(e: &CoreError) -> bool {
    matches!(e, CoreError::Value { .. } | CoreError::Shape { .. })
}

fn matches_memory(e: &CoreError) -> bool {
    matches!(e, CoreError::Memory { .. })
}

fn any_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..64,
        Just(usize::MAX),
        Just(usize::MAX / 2 + 1),
        Just(1usize << 32),
        Just((1usize << 62) + 1),
        any::<usize>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sampler_sizes_never_wrap(batch in any_size(), world in any_size(), alpha in 0.0f64..=1.0,
                                groups in 1usize..40, w in prop::collection::vec(
                                    prop_oneof![0.0f64..10.0, Just(1e308), Just(f64::NAN)], 3)) {
        let g: Vec<i64> = (0..groups as i64).flat_map(|i| [i, i, i]).collect();
        let l: Vec<i64> = (0..groups).flat_map(|_| [0i64, 1, 2]).collect();
        let pool = PairPool::from_arrays(&g, &l, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cfg = SamplerConfig { batch_size: batch, world_size: world, alpha, schedule: crate::sampler::AlphaSchedule::Constant, seed: 1,
                                  lang_weights: w, drop_last: true };
        match HybridSampler::new(pool, cfg) {
            Ok(s) => {
                let plan = s.plan(0);
                // the global batch is the true product, never a wrapped one
                prop_assert_eq!(Some(plan.global_batch), batch.checked_mul(world));
                prop_assert_eq!(plan.q_rows.len(), s.steps() * plan.global_batch);
            }
            Err(e) => prop_assert!(is_input_error(&e), "{}", e),
        }
    }

    #[test]
    fn evaluator_sizes_never_abort(n_rows in any_size(), first_row in any_size(),
                                   n_ks in prop_oneof![0usize..4, Just(1usize << 40)],
                                   map_k in any_size()) {
        // two questions, three candidates in two languages
        let scores = [0.5f64, 0.1, 0.9, 0.3, 0.2, 0.8];
        let indptr = [0i64, 1, 2];
        let indices = [0i64, 2];
        let rel = Relevance { indptr: &indptr, indices: &indices };
        let layout = Layout::new(&[0, 2, 3]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let spec = Spec { recall_ks: vec![1; n_ks.min(1 << 16)], map_k, map_norm: MapNorm::R };
        let rows = n_rows.min(2);
        match query_metrics(&scores[..rows * 3], n_rows, first_row, &rel, &layout, &spec) {
            Ok(m) => {
                prop_assert_eq!(m.ap.len(), n_rows);
                prop_assert!(n_rows <= 2 && first_row + n_rows <= 2);
            }
            Err(e) => prop_assert!(is_input_error(&e) || matches_memory(&e), "{}", e),
        }
    }

    #[test]
    fn try_vec_is_exact_or_an_error(a in any_size(), b in any_size()) {
        match try_vec("x", &[a.min(1 << 12), b.min(1 << 12)], 0u8) {
            Ok(v) => prop_assert_eq!(v.len(), a.min(1 << 12) * b.min(1 << 12)),
            Err(e) => prop_assert!(false, "{e}"),
        }
        if let Some(p) = a.checked_mul(b) {
            if p > 1 << 40 {
                prop_assert!(try_vec("x", &[a, b], 0u64).is_err());
            }
        } else {
            prop_assert!(try_vec("x", &[a, b], 0u8).is_err());
        }
    }
}
