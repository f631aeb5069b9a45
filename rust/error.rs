//! Typed errors of the core. Every variant names the field (argument) that is wrong, so the
//! Python layer can turn it into a `ValueError` whose message tells the user what to change.

use thiserror::Error;

/// An error from the pure-Rust core. Never a panic: everything input can reach ends here.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// An argument has the wrong shape or length.
    #[error("{field}: {message}")]
    Shape {
        field: &'static str,
        message: String,
    },
    /// An argument has a value outside its domain.
    #[error("{field}: {message}")]
    Value {
        field: &'static str,
        message: String,
    },
    /// An output whose size the input decides does not fit in memory.
    #[error("{field}: the result needs {bytes} bytes, more than can be allocated")]
    Memory { field: &'static str, bytes: String },
    /// A score is NaN or infinite.
    #[error("scores: non-finite value {value} at row {row}, column {col}; scores must be finite")]
    NonFinite { row: usize, col: usize, value: f64 },
}

impl CoreError {
    /// Shorthand for a [`CoreError::Shape`].
    pub fn shape(field: &'static str, message: impl Into<String>) -> Self {
        CoreError::Shape {
            field,
            message: message.into(),
        }
    }

    /// Shorthand for a [`CoreError::Value`].
    pub fn value(field: &'static str, message: impl Into<String>) -> Self {
        CoreError::Value {
            field,
            message: message.into(),
        }
    }
}

/// `dims.product()` copies of `value`, allocated fallibly: a size that overflows or that no
/// memory can hold is a [`CoreError::Memory`] naming `field`, never an abort.
pub fn try_vec<T: Clone>(field: &'static str, dims: &[usize], value: T) -> CoreResult<Vec<T>> {
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let bytes = n.and_then(|n| n.checked_mul(std::mem::size_of::<T>().max(1)));
    let too_big = || CoreError::Memory {
        field,
        bytes: bytes.map_or_else(
            || format!("more than {} (the product {dims:?} overflows)", usize::MAX),
            |b| b.to_string(),
        ),
    };
    let n = match (n, bytes) {
        (Some(n), Some(b)) if b <= isize::MAX as usize => n,
        _ => return Err(too_big()),
    };
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big())?;
    v.resize(n, value);
    Ok(v)
}

/// Result type of the core.
pub type CoreResult<T> = Result<T, CoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_vec_fails_cleanly() {
        assert_eq!(try_vec("x", &[2, 3], 0u8).map(|v| v.len()), Ok(6));
        assert!(matches!(
            try_vec("x", &[usize::MAX, 2], 0.0f64),
            Err(CoreError::Memory { field: "x", .. })
        ));
        assert!(matches!(
            try_vec("x", &[1 << 40, 1 << 20], 0.0f64),
            Err(CoreError::Memory { field: "x", .. })
        ));
    }
}
