//! Physical keys: the only module that builds or takes apart keys of the shared data table.
//!
//! All tenants' data lives in one redb table, `tenantry.data`, whose keys are byte strings
//! in `memcmp` order ([`ByteKey`]):
//!
//! ```text
//!  byte  0          8          12                 12 + n
//!        +----------+----------+------------------+
//!        | tenant   | table    | user key         |
//!        | u64 BE   | u32 BE   | n bytes, n >= 0  |
//!        +----------+----------+------------------+
//! ```
//!
//! * The tenant id and table id are fixed width, so the encoding is injective: two different
//!   `(tenant, table, key)` triples never give the same bytes, whatever the user key holds
//!   (empty, `0xFF…`, or bytes that look like another encoded key).
//! * Big-endian ids make each `(tenant, table)` pair a contiguous key range, so a tenant's table
//!   is `[prefix, prefix + 1)` where `prefix + 1` is the 12-byte prefix incremented as a number.
//!   Tenant ids stay below `u64::MAX` and table ids below `u32::MAX`, so that increment never
//!   wraps. Every scan, prefix and range is clamped to that interval before it reaches redb.
//! * Table ids are assigned per tenant by the commit pipeline on a table's first write, and are
//!   never reused; the name-to-id map lives in `tenantry.tables`, keyed `tenant u64 BE ++ name`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Bound;

use redb::{Key, TypeName, Value};

use crate::error::{Error, Result};
use crate::types::TenantId;

/// Longest user key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 4 * 1024;
/// Longest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
/// Longest table name accepted, in bytes.
pub const MAX_TABLE_NAME_LEN: usize = 64;

const PREFIX_LEN: usize = 12;

/// A table id, unique within the database.
pub(crate) type TableId = u32;

/// The 12-byte prefix shared by every key of one tenant's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TablePrefix([u8; PREFIX_LEN]);

/// A physical key range, already clamped to one tenant's table.
pub(crate) type PhysicalRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

impl TablePrefix {
    pub(crate) fn new(tenant: TenantId, table: TableId) -> Self {
        let mut bytes = [0u8; PREFIX_LEN];
        bytes[..8].copy_from_slice(&tenant.get().to_be_bytes());
        bytes[8..].copy_from_slice(&table.to_be_bytes());
        TablePrefix(bytes)
    }

    /// The table's id.
    #[cfg(feature = "postgres")]
    pub(crate) fn table(&self) -> TableId {
        TableId::from_be_bytes([self.0[8], self.0[9], self.0[10], self.0[11]])
    }

    /// The physical key of `user_key` in this table.
    pub(crate) fn key(&self, user_key: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(PREFIX_LEN + user_key.len());
        key.extend_from_slice(&self.0);
        key.extend_from_slice(user_key);
        key
    }

    /// Calls `f` with the physical key of `user_key`, built on the stack when it is short (the
    /// point-read path allocates nothing for it).
    pub(crate) fn with_key<R>(&self, user_key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        const STACK: usize = 128;
        let len = PREFIX_LEN + user_key.len();
        if len <= STACK {
            let mut buf = [0u8; STACK];
            buf[..PREFIX_LEN].copy_from_slice(&self.0);
            buf[PREFIX_LEN..len].copy_from_slice(user_key);
            f(&buf[..len])
        } else {
            f(&self.key(user_key))
        }
    }

    /// The user key of a physical key, or `None` if the key is outside this table.
    pub(crate) fn strip<'a>(&self, physical: &'a [u8]) -> Option<&'a [u8]> {
        physical.strip_prefix(&self.0[..])
    }

    /// The exclusive upper end of this table.
    fn end(&self) -> Vec<u8> {
        successor(&self.0).unwrap_or_default()
    }

    /// Every key of this table whose user key starts with `prefix`.
    pub(crate) fn prefix_range(&self, prefix: &[u8]) -> PhysicalRange {
        let start = self.key(prefix);
        let end = successor(&start).unwrap_or_else(|| self.end());
        (Bound::Included(start), Bound::Excluded(end))
    }

    /// The user range `bounds`, clamped to this table; `None` when it is empty.
    pub(crate) fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Option<PhysicalRange> {
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
            (start, end)
        {
            let empty = match (start, end) {
                (Bound::Included(_), Bound::Included(_)) => s > e,
                _ => s >= e,
            };
            if empty {
                return None;
            }
        }
        let lower = match start {
            Bound::Included(k) => Bound::Included(self.key(k)),
            Bound::Excluded(k) => Bound::Excluded(self.key(k)),
            Bound::Unbounded => Bound::Included(self.0.to_vec()),
        };
        let upper = match end {
            Bound::Included(k) => Bound::Included(self.key(k)),
            Bound::Excluded(k) => Bound::Excluded(self.key(k)),
            Bound::Unbounded => Bound::Excluded(self.end()),
        };
        Some((lower, upper))
    }
}

/// The redb key type of the engine's byte-keyed tables (`tenantry.data`, `tenantry.tables`):
/// byte strings in `memcmp` order, exactly as redb's `&[u8]` orders them, compared by an inlined
/// loop instead of a call to `memcmp`.
///
/// Applications never need it. It is public for tools that open a tenantry file (or a copy of
/// one) with redb directly, for forensics or diagnostics: redb refuses to open a table with a
/// key type of another name.
///
/// redb compares `&[u8]` keys with a call to `memcmp`. A point lookup compares its key with
/// twenty to thirty stored ones, and every stored key of the data table starts with the same
/// 12 bytes as its neighbours (tenant and table), so those calls were a fifth of a lookup's time
/// (format 3). The order being the same, only redb's type name for the table changed (format 4;
/// older files are converted when opened).
#[derive(Debug)]
pub enum ByteKey {}

impl Value for ByteKey {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new("tenantry::ByteKey")
    }
}

impl Key for ByteKey {
    // Inline, so that redb's B-tree code inlines it wherever it is instantiated (the plugin
    // host reads through generic engine functions, so its copy of that code is its own).
    #[inline]
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        compare_bytes(data1, data2)
    }

    // The order is `&[u8]`'s, so redb's own separators and smallest key for it hold too.
    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> Cow<'a, [u8]> {
        <&[u8] as Key>::separator(left, right)
    }

    fn min_encoded_key() -> Option<Cow<'static, [u8]>> {
        <&[u8] as Key>::min_encoded_key()
    }
}

/// Lexicographic byte order (`a.cmp(b)` on slices), inlined: eight bytes at a time as
/// big-endian words, then byte by byte, then the shorter first.
#[inline]
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let (mut x, mut y) = (a, b);
    while let (Some((p, x_rest)), Some((q, y_rest))) =
        (x.split_first_chunk::<8>(), y.split_first_chunk::<8>())
    {
        if p != q {
            return u64::from_be_bytes(*p).cmp(&u64::from_be_bytes(*q));
        }
        (x, y) = (x_rest, y_rest);
    }
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    x.len().cmp(&y.len())
}

/// Every physical key of one tenant, all tables included.
pub(crate) fn tenant_range(tenant: TenantId) -> (Vec<u8>, Vec<u8>) {
    let start = tenant.get().to_be_bytes().to_vec();
    let end = successor(&start).unwrap_or_default();
    (start, end)
}

/// The smallest byte string greater than every string that starts with `bytes`, or `None` if
/// there is none (`bytes` is empty or all `0xFF`): the exclusive end of a prefix scan.
pub fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let last = bytes.iter().rposition(|&b| b != 0xFF)?;
    let mut next = bytes[..=last].to_vec();
    next[last] += 1;
    Some(next)
}

/// Key of `tenantry.tables`: the tenant, then the table name.
pub(crate) fn table_name_key(tenant: TenantId, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&tenant.get().to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

/// Table names: 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with `_` (reserved for the
/// engine and the plugin host).
pub(crate) fn validate_table_name(name: &str, allow_reserved: bool) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidTableName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name.len() > MAX_TABLE_NAME_LEN {
        return invalid("longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return invalid("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    if name.starts_with('_') && !allow_reserved {
        return invalid("names starting with '_' are reserved");
    }
    Ok(())
}

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// The audit target of a key: `table/key`, with the key as printable ASCII or hex, and long
/// keys shortened visibly (for example `projects/0x00000002`).
pub fn audit_target(table: &str, key: &[u8]) -> String {
    let mut out = String::with_capacity(table.len() + 3 + key.len().min(DISPLAY_KEY_MAX) * 2);
    out.push_str(table);
    out.push('/');
    push_display_key(&mut out, key);
    out
}

/// Longest part of a key shown in an audit target, in bytes.
const DISPLAY_KEY_MAX: usize = 48;

/// A key as shown in an audit target: printable ASCII as is, anything else as hex, and long
/// keys shortened visibly.
#[cfg(test)]
pub(crate) fn display_key(key: &[u8]) -> String {
    let mut out = String::new();
    push_display_key(&mut out, key);
    out
}

fn push_display_key(out: &mut String, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let printable = key.iter().all(|b| (0x21..0x7F).contains(b));
    let shown = &key[..key.len().min(DISPLAY_KEY_MAX)];
    if printable && !key.is_empty() {
        out.extend(shown.iter().map(|&b| char::from(b)));
    } else {
        out.push_str("0x");
        for &b in shown {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    if key.len() > DISPLAY_KEY_MAX {
        let _ = write!(out, "…(+{} bytes)", key.len() - DISPLAY_KEY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> TenantId {
        TenantId::from_raw(n)
    }

    #[test]
    fn encoding_is_big_endian_tenant_then_table_then_key() {
        let cases: &[(u64, u32, &[u8], &[u8])] = &[
            (1, 1, b"", &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]),
            (
                0x0102,
                0x0304,
                b"k",
                &[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, b'k'],
            ),
            (
                2,
                7,
                &[0xFF, 0xFF],
                &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7, 0xFF, 0xFF],
            ),
        ];
        for &(tenant, table, key, want) in cases {
            assert_eq!(TablePrefix::new(t(tenant), table).key(key), want);
        }
    }

    #[test]
    fn compare_bytes_is_slice_order() {
        let samples: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xFF],
            vec![0; 8],
            vec![0; 9],
            vec![0xFF; 8],
            vec![0xFF; 16],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 0],
            vec![1, 2, 3, 4, 5, 6, 7, 9],
            vec![1, 2, 3, 4, 5, 6, 8],
            TablePrefix::new(t(1), 1).key(b"a"),
            TablePrefix::new(t(1), 1).key(b"ab"),
            TablePrefix::new(t(1), 2).key(b""),
            TablePrefix::new(t(256), 1).key(&[0x80; 20]),
        ];
        for a in &samples {
            for b in &samples {
                assert_eq!(compare_bytes(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn compare_bytes_matches_slice_order(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            a in proptest::collection::vec(0u8..4, 0..20),
            b in proptest::collection::vec(0u8..4, 0..20),
        ) {
            // A shared prefix and a small alphabet make long equal runs and ties likely.
            let a = [&prefix[..], &a[..]].concat();
            let b = [&prefix[..], &b[..]].concat();
            proptest::prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(compare_bytes(&b, &a), b.cmp(&a));
            if a < b {
                let s = ByteKey::separator(&a, &b);
                proptest::prop_assert!(a.as_slice() <= &*s && &*s < b.as_slice());
            }
        }
    }

    #[test]
    fn prefix_of_ff_keys_stays_in_table() {
        let p = TablePrefix::new(t(5), 9);
        let (lo, hi) = p.prefix_range(&[0xFF, 0xFF]);
        assert_eq!(lo, Bound::Included(p.key(&[0xFF, 0xFF])));
        // All-0xFF prefix: the end is the next table's start, never another tenant.
        assert_eq!(hi, Bound::Excluded(TablePrefix::new(t(5), 10).key(b"")));
        let (_, hi) = p.prefix_range(b"");
        assert_eq!(hi, Bound::Excluded(TablePrefix::new(t(5), 10).key(b"")));
        let (_, hi) = p.prefix_range(b"a\xFF");
        assert_eq!(hi, Bound::Excluded(p.key(b"b")));
    }

    #[test]
    fn unbounded_ranges_are_clamped_to_the_table() {
        let p = TablePrefix::new(t(3), 1);
        let (lo, hi) = p
            .range(Bound::Unbounded, Bound::Unbounded)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(lo, Bound::Included(p.key(b"")));
        assert_eq!(hi, Bound::Excluded(TablePrefix::new(t(3), 2).key(b"")));
    }

    #[test]
    fn inverted_or_empty_ranges_are_none() {
        let p = TablePrefix::new(t(3), 1);
        assert!(
            p.range(Bound::Included(b"m"), Bound::Excluded(b"a"))
                .is_none()
        );
        assert!(
            p.range(Bound::Included(b"a"), Bound::Excluded(b"a"))
                .is_none()
        );
        assert!(
            p.range(Bound::Excluded(b"a"), Bound::Included(b"a"))
                .is_none()
        );
        assert!(
            p.range(Bound::Included(b"a"), Bound::Included(b"a"))
                .is_some()
        );
    }

    #[test]
    fn keys_that_look_like_encoded_ids_do_not_escape() {
        let a = TablePrefix::new(t(1), 1);
        let forged = TablePrefix::new(t(2), 1).key(b"secret");
        let key = a.key(&forged);
        assert_eq!(a.strip(&key), Some(&forged[..]));
        assert!(TablePrefix::new(t(2), 1).strip(&key).is_none());
    }

    #[test]
    fn table_names() {
        for ok in ["projects", "a", "x.y-z_1", &"n".repeat(64)] {
            assert!(validate_table_name(ok, false).is_ok(), "{ok}");
        }
        for bad in ["", "_sys", "a/b", "sp ace", "é", &"n".repeat(65)] {
            assert!(validate_table_name(bad, false).is_err(), "{bad}");
        }
        assert!(validate_table_name("_plugins", true).is_ok());
    }

    #[test]
    fn display_key_shortens_and_escapes() {
        assert_eq!(display_key(b"p1"), "p1");
        assert_eq!(display_key(b""), "0x");
        assert_eq!(display_key(b"a b"), "0x612062");
        let long = display_key(&[b'k'; 100]);
        assert!(long.ends_with("…(+52 bytes)"), "{long}");
    }
}
