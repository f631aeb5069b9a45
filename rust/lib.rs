//! hybridrs core: exact multilingual retrieval evaluation and hybrid batch sampling.
//!
//! The modules here are plain Rust and know nothing of Python; `python` (behind the `python`
//! feature, which maturin turns on) only converts arguments and delegates, with `pystr`, its
//! reader of lists of `str` into the core's string layouts.
//!
//! Integer arithmetic (reviewed with `cargo clippy -- -W clippy::arithmetic_side_effects`):
//! every size that input decides goes through checked or saturating arithmetic and fallible
//! allocation (`error::try_vec`, a `MemoryError` in Python): `batch_size * world_size`, the
//! per-question outputs (`rows x languages x cutoffs`), the aggregates, the fused path's packed
//! panels, row ranges (`first_row + n_rows`). The remaining operations are bounded by
//! invariants checked when a structure is built: fewer than 2^32 rows and 256 languages in a
//! pool, a global batch no larger than the eligible groups (so `steps x batch` is at most
//! twice the groups), slices known non-empty before `len() - 1`. `proptests.rs` checks the
//! size arithmetic over the whole `usize` range.

pub mod codes;
pub mod error;
pub mod eval;
mod partition;
pub mod pool;
pub mod sampler;
pub mod string_pool;

#[cfg(test)]
mod proptests;
#[cfg(feature = "python")]
mod pystr;
#[cfg(feature = "python")]
mod python;

pub use error::{CoreError, CoreResult};
