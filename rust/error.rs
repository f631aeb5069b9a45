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

/// Result type of the core.
pub type CoreResult<T> = Result<T, CoreError>;
