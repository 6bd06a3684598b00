//! The JSON error body every non-2xx answer carries (contract section 2).

use serde::{Deserialize, Serialize};

/// `{"error": "...", "details": "..."}`. `details` is always present on a
/// whole-batch `400`; other statuses may omit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            details: None,
        }
    }

    pub fn with_details(error: impl Into<String>, details: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            details: Some(details.into()),
        }
    }
}
