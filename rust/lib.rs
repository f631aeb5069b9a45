//! hybridrs core: exact multilingual retrieval evaluation and hybrid batch sampling.
//!
//! The modules here are plain Rust and know nothing of Python; `python` (behind the `python`
//! feature, which maturin turns on) only converts arguments and delegates.

pub mod error;
pub mod eval;
pub mod pool;
pub mod sampler;

#[cfg(feature = "python")]
mod python;

pub use error::{CoreError, CoreResult};
