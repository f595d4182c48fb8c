//! Text that crosses the trust boundary, and the formats of values on the command line.
//!
//! Tenants control much of what the CLI prints: keys and targets, actors, audit messages,
//! plugin output and debug logs, error messages of plugins. An operator's terminal interprets
//! escape sequences (`ESC [ 2 J` clears it, `ESC ] 0 ;` retitles it, some terminals even take
//! the 8-bit `CSI`, U+009B), and bidirectional-override characters reorder what is shown. So
//! every piece of text reaches the terminal through [`neutralise`], which writes each such
//! character as a visible escape (`\u{1b}`) instead; JSON output goes through [`json_safe`],
//! which does the same with JSON's own `\uXXXX` escapes, so the JSON still means the same thing.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether `c` can change how a terminal shows what follows it: C0 and C1 control characters
/// and DEL (`char::is_control`), and the invisible bidirectional and line-breaking formatting
/// characters (`U+061C`, `U+200E`–`U+200F`, `U+2028`–`U+202E`, `U+2066`–`U+2069`).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character that could drive or reorder a terminal written as a visible
/// escape: `\n`, `\r`, `\t`, and `\u{1b}` (lowercase hex) for the others. Everything else,
/// non-ASCII letters included, is kept. Borrowed when there is nothing to escape.
///
/// This is the one function through which tenant-controlled text reaches a terminal.
pub(crate) fn neutralise(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON with the characters `serde_json` leaves as they are (DEL, C1 controls, the
/// bidirectional formatting characters) written as `\uXXXX` escapes. Such characters can only
/// occur inside JSON strings, where the escape denotes the same character: the value is
/// unchanged, and the text is safe to show on a terminal.
pub(crate) fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Newlines between values (JSON Lines, pretty printing) are layout, not content:
        // serde_json always escapes a newline inside a string.
        if is_unsafe(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A time in microseconds since the epoch as RFC 3339 UTC with seconds, `2024-05-01T12:00:00Z`.
pub(crate) fn time(micros: i64) -> String {
    match u64::try_from(micros) {
        Ok(us) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_micros(us)).to_string()
        }
        Err(_) => format!("{micros}µs"),
    }
}

/// A time in microseconds since the epoch as RFC 3339 UTC with microseconds, for JSON.
pub(crate) fn time_precise(micros: i64) -> String {
    match u64::try_from(micros) {
        Ok(us) => {
            humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us)).to_string()
        }
        Err(_) => micros.to_string(),
    }
}

/// Parses a point in time given on the command line, in microseconds since the epoch:
/// RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01 12:00:00`, UTC), a date (`2024-05-01`,
/// midnight UTC), or a duration meaning that long ago (`90s`, `15m`, `2h`, `7d`, `1h 30m`).
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    parse_time_at(text, SystemTime::now())
}

fn parse_time_at(text: &str, now: SystemTime) -> Result<i64, String> {
    let text = text.trim();
    let micros = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .map_err(|_| format!("{text:?} is before 1970"))
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return micros(t);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00")) {
        return micros(t);
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let then = now
            .checked_sub(ago)
            .ok_or_else(|| format!("{text:?} ago is before 1970"))?;
        return micros(then);
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or a \
         duration ago (15m, 2h, 7d)"
    ))
}

/// A quota value: `unlimited` (or `none`), or a number with an optional binary suffix
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`; case-insensitive, `B` optional).
pub(crate) fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let number: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number or `unlimited`"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?} has an unknown unit (use K, M, G or T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .map(Some)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_escapes_every_terminal_control() {
        let cases: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("caf\u{e9} \u{4e16}\u{754c}", "caf\u{e9} \u{4e16}\u{754c}"),
            ("\x1b[2J\x1b[H", "\\u{1b}[2J\\u{1b}[H"),
            ("\x1b]0;pwned\x07", "\\u{1b}]0;pwned\\u{7}"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("nul\0del\x7f", "nul\\u{0}del\\u{7f}"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("iso\u{2066}late\u{2069}", "iso\\u{2066}late\\u{2069}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (input, expected) in cases {
            assert_eq!(neutralise(input), *expected, "input {input:?}");
            assert!(!neutralise(input).chars().any(is_unsafe));
        }
        assert!(matches!(neutralise("safe"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_safe_keeps_the_value_and_drops_raw_controls() {
        let value = serde_json::json!({ "k": "a\u{7f}b\u{9b}c\u{202e}d\x1be\nf" });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn limits_parse_with_units() {
        assert_eq!(parse_limit("unlimited"), Ok(None));
        assert_eq!(parse_limit("NONE"), Ok(None));
        assert_eq!(parse_limit("1000"), Ok(Some(1000)));
        assert_eq!(parse_limit("1_000"), Ok(Some(1000)));
        assert_eq!(parse_limit("10MiB"), Ok(Some(10 << 20)));
        assert_eq!(parse_limit("2g"), Ok(Some(2 << 30)));
        assert_eq!(parse_limit("4 K"), Ok(Some(4096)));
        assert!(parse_limit("ten").is_err());
        assert!(parse_limit("5 parsecs").is_err());
        assert!(parse_limit("99999999999T").is_err());
    }

    #[test]
    fn times_parse_as_instants_dates_and_durations_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time_at("1970-01-02T00:00:00Z", now),
            Ok(86_400_000_000)
        );
        assert_eq!(parse_time_at("1970-01-02", now), Ok(86_400_000_000));
        assert_eq!(
            parse_time_at("1970-01-02 00:00:01", now),
            Ok(86_401_000_000)
        );
        assert_eq!(parse_time_at("1h", now), Ok((1_000_000 - 3600) * 1_000_000));
        assert!(parse_time_at("yesterday-ish", now).is_err());
        assert!(parse_time_at("100000000h", now).is_err());
        assert_eq!(time(86_400_000_000), "1970-01-02T00:00:00Z");
        assert_eq!(time_precise(1), "1970-01-01T00:00:00.000001Z");
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
