//! The host's stored records, each with an explicit version, so that a field added later does
//! not make every record already stored unreadable (bincode is positional: a reader of one
//! layout cannot decode another).
//!
//! | bytes | field |
//! |-------|-------|
//! | 1     | `0xFF`: a versioned record (no unversioned record starts with it, see below) |
//! | 1     | the record's version |
//! | rest  | bincode 2 (standard configuration, serde mode) of that version's layout |
//!
//! Version 1 is the layout the host stored before records were versioned, without this
//! header: it is still read. Its first byte is a bincode varint (the length of the plugin's
//! name, at most 64, or the fuel limit, a `u64` whose first varint byte is at most 253), never
//! `0xFF`, which bincode's varint encoding does not use. A version newer than this host knows
//! is refused with [`Error::Decode`] naming it, never read as something else.
//!
//! | record | table, key | version 1 | version 2 (written now) |
//! |--------|------------|-----------|-------------------------|
//! | [`PluginInfo`] | `_plugins`, name | name, version, exports, size, installed_micros | the same |
//! | [`Limits`] | `_host`, `limits` | fuel, wall_time, memory_bytes, host_calls, bytes_read, bytes_written, input_bytes, output_bytes, debug_log_bytes, concurrency | version 1's, then audit_entries |
//!
//! A field added later is a new version with its own layout struct here, and a conversion from
//! every older one (a missing field takes its default).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantry_engine::Error;

use crate::catalog::PluginInfo;
use crate::config::Limits;

/// First byte of every versioned record.
const VERSIONED: u8 = 0xFF;
/// The version this host writes of each record.
const PLUGIN_VERSION: u8 = 2;
const LIMITS_VERSION: u8 = 2;

#[derive(Serialize, Deserialize)]
struct PluginV1 {
    name: String,
    version: String,
    exports: Vec<String>,
    size: u64,
    installed_micros: i64,
}

#[derive(Serialize, Deserialize)]
struct LimitsV1 {
    fuel: u64,
    wall_time: Duration,
    memory_bytes: u64,
    host_calls: u32,
    bytes_read: u64,
    bytes_written: u64,
    input_bytes: u32,
    output_bytes: u32,
    debug_log_bytes: u32,
    concurrency: u32,
}

#[derive(Serialize, Deserialize)]
struct LimitsV2 {
    v1: LimitsV1,
    audit_entries: u32,
}

impl From<LimitsV1> for Limits {
    fn from(v1: LimitsV1) -> Self {
        Limits {
            fuel: v1.fuel,
            wall_time: v1.wall_time,
            memory_bytes: v1.memory_bytes,
            host_calls: v1.host_calls,
            bytes_read: v1.bytes_read,
            bytes_written: v1.bytes_written,
            input_bytes: v1.input_bytes,
            output_bytes: v1.output_bytes,
            debug_log_bytes: v1.debug_log_bytes,
            concurrency: v1.concurrency,
            // Fields that version 1 did not have take their defaults.
            ..Limits::default()
        }
    }
}

fn limits_v1(limits: &Limits) -> LimitsV1 {
    LimitsV1 {
        fuel: limits.fuel,
        wall_time: limits.wall_time,
        memory_bytes: limits.memory_bytes,
        host_calls: limits.host_calls,
        bytes_read: limits.bytes_read,
        bytes_written: limits.bytes_written,
        input_bytes: limits.input_bytes,
        output_bytes: limits.output_bytes,
        debug_log_bytes: limits.debug_log_bytes,
        concurrency: limits.concurrency,
    }
}

/// The stored form of `info`.
pub(crate) fn encode_plugin(info: &PluginInfo) -> Result<Vec<u8>, Error> {
    encode(
        PLUGIN_VERSION,
        &PluginV1 {
            name: info.name.clone(),
            version: info.version.clone(),
            exports: info.exports.clone(),
            size: info.size,
            installed_micros: info.installed_micros,
        },
    )
}

/// A stored plugin record of any version this host knows.
pub(crate) fn decode_plugin(bytes: &[u8]) -> Result<PluginInfo, Error> {
    const WHAT: &str = "plugin record";
    let v1: PluginV1 = match split(bytes) {
        None => body(WHAT, bytes)?,
        Some((1 | 2, rest)) => body(WHAT, rest)?,
        Some((version, _)) => return Err(unknown(WHAT, version, PLUGIN_VERSION)),
    };
    Ok(PluginInfo {
        name: v1.name,
        version: v1.version,
        exports: v1.exports,
        size: v1.size,
        installed_micros: v1.installed_micros,
    })
}

/// The stored form of `limits`.
pub(crate) fn encode_limits(limits: &Limits) -> Result<Vec<u8>, Error> {
    encode(
        LIMITS_VERSION,
        &LimitsV2 {
            v1: limits_v1(limits),
            audit_entries: limits.audit_entries,
        },
    )
}

/// A stored limits record of any version this host knows.
pub(crate) fn decode_limits(bytes: &[u8]) -> Result<Limits, Error> {
    const WHAT: &str = "limits record";
    Ok(match split(bytes) {
        None => Limits::from(body::<LimitsV1>(WHAT, bytes)?),
        Some((1, rest)) => Limits::from(body::<LimitsV1>(WHAT, rest)?),
        Some((2, rest)) => {
            let v2: LimitsV2 = body(WHAT, rest)?;
            let mut limits = Limits::from(v2.v1);
            limits.audit_entries = v2.audit_entries;
            limits
        }
        Some((version, _)) => return Err(unknown(WHAT, version, LIMITS_VERSION)),
    })
}

fn encode<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, Error> {
    let mut out = vec![VERSIONED, version];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| Error::Encode(e.to_string()))?;
    Ok(out)
}

/// `(version, body)` of a versioned record; `None` for an unversioned (version 1) one.
fn split(bytes: &[u8]) -> Option<(u8, &[u8])> {
    match bytes {
        [VERSIONED, version, rest @ ..] => Some((*version, rest)),
        _ => None,
    }
}

fn body<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    // A record is a few hundred bytes: nothing it decodes may claim more than 1 MiB (a length
    // prefix claiming more would otherwise be allocated, and could abort the process).
    let config = bincode::config::standard().with_limit::<{ 1 << 20 }>();
    match bincode::serde::decode_from_slice(bytes, config) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(decode_error(what, "trailing bytes".into())),
        Err(e) => Err(decode_error(what, e.to_string())),
    }
}

fn unknown(what: &str, version: u8, newest: u8) -> Error {
    let by = if version > newest {
        "it was written by a newer tenantry"
    } else {
        "no tenantry writes it: the record is damaged"
    };
    decode_error(
        what,
        format!("version {version}, but this host reads versions 1 to {newest}: {by}"),
    )
}

fn decode_error(what: &str, reason: String) -> Error {
    Error::Decode {
        table: what.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn plugin() -> PluginInfo {
        PluginInfo {
            name: "projects".into(),
            version: "ab".repeat(32),
            exports: vec!["create".into(), "list".into()],
            size: 12_345,
            installed_micros: 1_700_000_000_000_000,
        }
    }

    /// What the host stored before records were versioned: bincode of the struct itself.
    fn unversioned<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// A `PluginInfo` as the host stored it before records were versioned (commit bef961c):
    /// `plugin()`, in bincode's standard configuration.
    const PLUGIN_V1: &str = "0870726f6a656374734061626162616261626162616261626162616261626162\
        6162616261626162616261626162616261626162616261626162616261626162\
        616261626162616261620206637265617465046c697374fb3930fd00803c3048\
        140c00";
    /// `Limits::default()` as stored before records were versioned (bef961c).
    const LIMITS_V1: &str =
        "fc00ca9a3b0100fc00000004fb1027fc00000001fc00008000fc00001000fc00001000fc0000010004";

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn records_stored_before_versioning_still_decode() {
        assert_eq!(decode_plugin(&hex(PLUGIN_V1)).unwrap(), plugin());
        assert_eq!(decode_limits(&hex(LIMITS_V1)).unwrap(), Limits::default());
    }

    #[test]
    fn plugin_records_of_every_version_decode() {
        let info = plugin();
        assert_eq!(decode_plugin(&encode_plugin(&info).unwrap()).unwrap(), info);
        let v1 = unversioned(&info);
        assert_ne!(v1[0], VERSIONED);
        assert_eq!(decode_plugin(&v1).unwrap(), info);
    }

    #[test]
    fn limits_records_of_every_version_decode() {
        let limits = Limits::default().fuel(165).concurrency(9).audit_entries(7);
        assert_eq!(
            decode_limits(&encode_limits(&limits).unwrap()).unwrap(),
            limits
        );
        // Version 1 had no audit_entries: it reads as the default.
        let v1 = unversioned(&limits_v1(&limits));
        assert_ne!(v1[0], VERSIONED);
        let read = decode_limits(&v1).unwrap();
        assert_eq!(read.fuel, 165);
        assert_eq!(read.concurrency, 9);
        assert_eq!(read.audit_entries, Limits::default().audit_entries);
        // Every fuel value's first varint byte differs from the marker.
        for fuel in [0, 165, 250, 251, 1 << 16, 1 << 32, u64::MAX] {
            let v1 = unversioned(&limits_v1(&Limits::default().fuel(fuel)));
            assert_ne!(v1[0], VERSIONED, "fuel {fuel}");
            assert_eq!(decode_limits(&v1).unwrap().fuel, fuel);
        }
    }

    #[test]
    fn newer_versions_and_damage_are_typed_errors() {
        let mut newer = encode_plugin(&plugin()).unwrap();
        newer[1] = 9;
        let err = decode_plugin(&newer).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        let mut newer = encode_limits(&Limits::default()).unwrap();
        newer[1] = 3;
        assert!(matches!(decode_limits(&newer), Err(Error::Decode { .. })));
        newer[1] = 0;
        let err = decode_limits(&newer).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        for bytes in [&[][..], &[0xFF], &[0xFF, 2], &[0xFF, 2, 1, 2, 3], &[200, 1]] {
            assert!(decode_plugin(bytes).is_err(), "{bytes:?}");
            assert!(decode_limits(bytes).is_err(), "{bytes:?}");
        }
        let mut trailing = encode_plugin(&plugin()).unwrap();
        trailing.push(0);
        assert!(decode_plugin(&trailing).is_err());
    }
}
