//! Turns raw ABI results (lengths and negative statuses) into `Result`s, and reads the result
//! buffer and the last error message.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Error;
use crate::abi;
use crate::wire::Status;

/// Maps a host return value: non-negative values are results, negative ones are statuses whose
/// message is fetched with `last_error`.
pub(crate) fn check(code: i64) -> Result<u64, Error> {
    u64::try_from(code).map_err(|_| failure(code))
}

/// The error for a negative `code`, with the host's message.
pub(crate) fn failure(code: i64) -> Error {
    let message = last_error_message();
    match Status::from_code(code) {
        Some(status) => Error::Host { status, message },
        None => Error::UnknownStatus { code, message },
    }
}

/// Copies `len` bytes out of the host's result buffer.
pub(crate) fn read_result(len: u64) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(len).map_err(|_| Error::Decode {
        message: alloc::format!("the host reported a result of {len} bytes"),
    })?;
    let bytes = abi::result_read(len)?;
    if bytes.len() != len {
        return Err(Error::Decode {
            message: alloc::format!(
                "the host announced {len} result bytes but copied {}",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// The message of the last failed host call, or an empty string when there is none.
fn last_error_message() -> String {
    let Ok(len) = abi::last_error() else {
        return String::new();
    };
    match u64::try_from(len).ok().map(read_result) {
        Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_negative_codes_are_results() {
        assert_eq!(check(0), Ok(0));
        assert_eq!(check(42), Ok(42));
    }

    #[test]
    fn negative_codes_become_statuses_without_a_host() {
        assert_eq!(
            check(-4),
            Err(Error::Host {
                status: Status::ValueTooLarge,
                message: String::new()
            })
        );
        assert_eq!(
            check(-1000),
            Err(Error::UnknownStatus {
                code: -1000,
                message: String::new()
            })
        );
    }

    #[test]
    fn reading_results_needs_a_host() {
        assert_eq!(read_result(3), Err(Error::Unavailable));
    }
}
