//! The one error type of the SDK, returned by host calls and by plugin functions.

use alloc::string::{String, ToString};
use core::fmt;

use crate::wire::Status;

/// What went wrong in a plugin: a host function refused a request, bytes could not be encoded
/// or decoded, or the plugin itself failed.
///
/// A plugin function that returns `Err(error)` fails its invocation: the host rolls back the
/// invocation's writes and receives `error.to_string()` as the error message.
///
/// ```
/// use tenantry_sdk::{Error, Status};
///
/// fn put_or_explain(error: Error) -> Error {
///     match error.status() {
///         Some(Status::ValueTooLarge) => Error::msg("the project description is too long"),
///         _ => error,
///     }
/// }
/// # let _ = put_or_explain(Error::msg("x"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A host function returned a known negative status.
    Host {
        /// What the host reported.
        status: Status,
        /// The host's explanation (from `last_error`), possibly empty.
        message: String,
    },
    /// A host function returned a negative code this SDK does not know (a newer host).
    UnknownStatus {
        /// The code returned.
        code: i64,
        /// The host's explanation (from `last_error`), possibly empty.
        message: String,
    },
    /// The function's input could not be decoded (for [`Json`](crate::Json): not valid JSON for
    /// the expected type).
    Input {
        /// The decoder's explanation.
        message: String,
    },
    /// A value could not be encoded (bincode for stored values, JSON for outputs).
    Encode {
        /// The encoder's explanation.
        message: String,
    },
    /// Bytes from storage or from the host could not be decoded as the expected type.
    Decode {
        /// The decoder's explanation.
        message: String,
    },
    /// An error raised by the plugin itself, with its message.
    Plugin(String),
    /// A host function was called outside a wasm32 plugin, where no tenantry host is linked
    /// (for example in a native unit test).
    Unavailable,
}

impl Error {
    /// A plugin error with this message.
    #[must_use]
    pub fn msg(message: impl fmt::Display) -> Self {
        Error::Plugin(message.to_string())
    }

    /// The host status behind this error, if a host function reported one.
    #[must_use]
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Host { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host { status, message } if message.is_empty() => write!(f, "{status}"),
            Error::Host { status, message } => write!(f, "{status}: {message}"),
            Error::UnknownStatus { code, message } if message.is_empty() => {
                write!(f, "the host reported unknown status {code}")
            }
            Error::UnknownStatus { code, message } => {
                write!(f, "the host reported unknown status {code}: {message}")
            }
            Error::Input { message } => write!(f, "the input could not be decoded: {message}"),
            Error::Encode { message } => write!(f, "a value could not be encoded: {message}"),
            Error::Decode { message } => write!(f, "a value could not be decoded: {message}"),
            Error::Plugin(message) => f.write_str(message),
            Error::Unavailable => {
                f.write_str("tenantry host functions are only available inside a wasm32 plugin")
            }
        }
    }
}

impl core::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Plugin(message.into())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Plugin(message)
    }
}

impl From<crate::abi::Unavailable> for Error {
    fn from(_: crate::abi::Unavailable) -> Self {
        Error::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        let cases = [
            (
                Error::Host {
                    status: Status::ValueTooLarge,
                    message: "value of 9 bytes exceeds 8".into(),
                },
                "the value is too large: value of 9 bytes exceeds 8",
            ),
            (
                Error::Host {
                    status: Status::ReadOnly,
                    message: String::new(),
                },
                "the tenant is read-only",
            ),
            (
                Error::UnknownStatus {
                    code: -99,
                    message: String::new(),
                },
                "the host reported unknown status -99",
            ),
            (Error::msg("project 7 not found"), "project 7 not found"),
            (Error::from("boom"), "boom"),
            (
                Error::Input {
                    message: "expected value".into(),
                },
                "the input could not be decoded: expected value",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn status_is_exposed_for_matching() {
        let error = Error::Host {
            status: Status::QuotaExceeded,
            message: String::new(),
        };
        assert_eq!(error.status(), Some(Status::QuotaExceeded));
        assert_eq!(Error::msg("x").status(), None);
    }
}
