//! How plugin functions receive their input and produce their output: the [`Json`] wrapper, the
//! [`FromInput`] and [`IntoOutput`] conversions, and the [`Handler`] trait that
//! [`export!`](crate::export!) relies on.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{FUNCTION_ERROR, FUNCTION_OK};
use crate::{Error, abi, host};

/// A JSON-encoded input or output.
///
/// As an input, an empty byte string reads as JSON `null`, so `Json<Option<T>>` and `Json<()>`
/// accept a call without input.
///
/// ```
/// use tenantry_sdk::{Error, Json};
///
/// #[derive(serde::Deserialize)]
/// struct Query {
///     id: u64,
/// }
/// fn double(Json(query): Json<Query>) -> Result<Json<u64>, Error> {
///     Ok(Json(query.id * 2))
/// }
/// # tenantry_sdk::export!(double);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

/// A type a plugin function can take as its input.
pub trait FromInput: Sized {
    /// Decodes the input bytes the host passed.
    ///
    /// # Errors
    /// [`Error::Input`] when the bytes are not a valid encoding of `Self`.
    fn from_input(input: Vec<u8>) -> Result<Self, Error>;
}

impl FromInput for Vec<u8> {
    fn from_input(input: Vec<u8>) -> Result<Self, Error> {
        Ok(input)
    }
}

impl FromInput for String {
    fn from_input(input: Vec<u8>) -> Result<Self, Error> {
        String::from_utf8(input).map_err(|e| Error::Input {
            message: e.to_string(),
        })
    }
}

impl<T: DeserializeOwned> FromInput for Json<T> {
    fn from_input(input: Vec<u8>) -> Result<Self, Error> {
        let bytes: &[u8] = if input.is_empty() { b"null" } else { &input };
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| Error::Input {
                message: alloc::format!("the input is not the JSON this function expects: {e}"),
            })
    }
}

/// A type a plugin function can return as its output.
pub trait IntoOutput {
    /// Encodes the output bytes handed to the host.
    ///
    /// # Errors
    /// [`Error::Encode`] when `self` cannot be encoded.
    fn into_output(self) -> Result<Vec<u8>, Error>;
}

impl IntoOutput for Vec<u8> {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(self)
    }
}

impl IntoOutput for String {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(self.into_bytes())
    }
}

impl IntoOutput for () {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }
}

impl<T: Serialize> IntoOutput for Json<T> {
    fn into_output(self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.0).map_err(|e| Error::Encode {
            message: e.to_string(),
        })
    }
}

/// A function [`export!`](crate::export!) can expose. Implemented for
/// `fn(I) -> Result<O, E>` with `I: FromInput`, for `fn(&[u8]) -> Result<O, E>` and for
/// `fn() -> Result<O, E>`, where `O: IntoOutput` and `E: Into<Error>`. `Marker` only tells
/// these implementations apart.
pub trait Handler<Marker> {
    /// Runs the function on raw input bytes and returns raw output bytes.
    ///
    /// # Errors
    /// Whatever the function, its input decoding or its output encoding returned.
    fn call(&self, input: Vec<u8>) -> Result<Vec<u8>, Error>;
}

/// Marks a [`Handler`] that borrows its input as `&[u8]`.
#[doc(hidden)]
#[derive(Debug)]
pub enum BorrowedInput {}

/// Marks a [`Handler`] that takes no input.
#[doc(hidden)]
#[derive(Debug)]
pub enum NoInput {}

impl<F, I, O, E> Handler<(I, O, E)> for F
where
    F: Fn(I) -> Result<O, E>,
    I: FromInput,
    O: IntoOutput,
    E: Into<Error>,
{
    fn call(&self, input: Vec<u8>) -> Result<Vec<u8>, Error> {
        self(I::from_input(input)?)
            .map_err(Into::into)?
            .into_output()
    }
}

impl<F, O, E> Handler<(BorrowedInput, O, E)> for F
where
    F: Fn(&[u8]) -> Result<O, E>,
    O: IntoOutput,
    E: Into<Error>,
{
    fn call(&self, input: Vec<u8>) -> Result<Vec<u8>, Error> {
        self(&input).map_err(Into::into)?.into_output()
    }
}

impl<F, O, E> Handler<(NoInput, O, E)> for F
where
    F: Fn() -> Result<O, E>,
    O: IntoOutput,
    E: Into<Error>,
{
    fn call(&self, _input: Vec<u8>) -> Result<Vec<u8>, Error> {
        self().map_err(Into::into)?.into_output()
    }
}

/// Runs `handler` on `input` and reports the outcome with `output`; returns the function
/// status. If the host refuses the output (too large), the invocation fails with that reason.
pub(crate) fn run<M, H: Handler<M>>(input: Vec<u8>, handler: H) -> i32 {
    // The input moves into the handler, so it is freed before the output is sent.
    let error = match handler.call(input) {
        Ok(output) => match send(&output) {
            Ok(()) => return FUNCTION_OK,
            Err(error) => Error::msg(alloc::format!(
                "the host refused the function's output of {} bytes: {error}",
                output.len()
            )),
        },
        Err(error) => error,
    };
    // A refused error message leaves the host to report the failure without one.
    let _ = send(error.to_string().as_bytes());
    FUNCTION_ERROR
}

fn send(bytes: &[u8]) -> Result<(), Error> {
    let code = abi::output(bytes)?;
    host::check(i64::from(code)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn call<M>(handler: impl Handler<M>, input: &[u8]) -> Result<Vec<u8>, Error> {
        handler.call(input.to_vec())
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct NewProject {
        name: String,
    }

    fn json_handler(Json(p): Json<NewProject>) -> Result<Json<usize>, Error> {
        Ok(Json(p.name.len()))
    }
    fn optional(Json(n): Json<Option<u32>>) -> Result<Json<u32>, Error> {
        Ok(Json(n.unwrap_or(7)))
    }
    fn raw(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(input.into_iter().rev().collect())
    }
    fn borrowed(input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(vec![input.len() as u8])
    }
    fn no_input() -> Result<String, Error> {
        Ok("hi".into())
    }
    fn failing(_: Vec<u8>) -> Result<(), &'static str> {
        Err("nope")
    }

    #[test]
    fn handlers_convert_inputs_and_outputs() {
        type Case<'a> = (Result<Vec<u8>, Error>, Result<&'a [u8], Error>);
        let cases: [Case<'_>; 7] = [
            (call(json_handler, br#"{"name":"abc"}"#), Ok(b"3")),
            (call(optional, b""), Ok(b"7")),
            (call(optional, b"5"), Ok(b"5")),
            (call(raw, b"abc"), Ok(b"cba")),
            (call(borrowed, b"abcd"), Ok(&[4])),
            (call(no_input, b"ignored"), Ok(b"hi")),
            (call(failing, b""), Err(Error::msg("nope"))),
        ];
        for (i, (got, expected)) in cases.into_iter().enumerate() {
            assert_eq!(got.as_deref(), expected.as_deref(), "case {i}");
        }
    }

    #[test]
    fn bad_json_input_is_an_input_error() {
        let result = call(json_handler, b"{\"nam\":1}");
        assert!(matches!(result, Err(Error::Input { .. })), "{result:?}");
        let result = call(json_handler, b"");
        assert!(matches!(result, Err(Error::Input { .. })), "{result:?}");
        assert!(matches!(
            String::from_input(vec![0xff]),
            Err(Error::Input { .. })
        ));
    }

    #[test]
    fn run_reports_an_error_status_without_a_host() {
        // Without a host `output` fails, so even a successful handler cannot report success.
        assert_eq!(run(b"x".to_vec(), raw), FUNCTION_ERROR);
        assert_eq!(run(Vec::new(), failing), FUNCTION_ERROR);
    }
}
