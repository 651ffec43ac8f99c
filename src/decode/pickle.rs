//! Python pickle (protocols 0-5) -> [`Value`], by a data-only stack machine.

use super::Value;

/// Why a pickle did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PickleError(pub String);

/// Decodes a whole pickle.
pub fn decode(_bytes: &[u8]) -> Result<Value, PickleError> {
    Err(PickleError("pickle decoding is not built yet".into()))
}
