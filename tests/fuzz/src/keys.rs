//! Target `keys`: the physical key layout of `engine/src/keys.rs`.
//!
//! For a tenant's table and a set of sample keys (the input's, their neighbours, and the same
//! user keys in neighbouring tenants and tables), checks that encoding is injective and undone
//! by `strip`; that a clamped prefix or range holds exactly the physical keys a model that
//! filters every sample would pick (so nothing of another tenant or table, and nothing of the
//! user's range is lost); that clamped ranges are never inverted (redb would refuse them); and
//! that [`ByteKey`]'s order and `successor` agree with byte-slice order.

use std::ops::Bound;

use arbitrary::{Arbitrary, Unstructured};
use redb::Key as _;
use tenantry_engine::fuzzing::{
    compare_keys, prefix_range, range, strip, table_key, table_key_inline, tenant_range,
};
use tenantry_engine::{ByteKey, successor};

use crate::{OwnedBound, in_bounds};

#[derive(Debug, Arbitrary)]
struct Input {
    tenant: u64,
    table: u32,
    /// Ids near the top of their range (0), near 0 (1), or as given.
    id_shape: u8,
    prefix: Vec<u8>,
    start: OwnedBound,
    end: OwnedBound,
    user_keys: Vec<Vec<u8>>,
    raw_keys: Vec<Vec<u8>>,
}

/// Runs the `keys` target on one input.
pub fn keys(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    // Tenant ids stay below u64::MAX and table ids below u32::MAX (the module's promise).
    let (tenant, table) = match input.id_shape % 3 {
        0 => (
            u64::MAX - 1 - input.tenant % 3,
            u32::MAX - 1 - input.table % 3,
        ),
        1 => (input.tenant % 3, input.table % 3),
        _ => (
            input.tenant.min(u64::MAX - 1),
            input.table.min(u32::MAX - 1),
        ),
    };
    // Few and short samples: the checks below are quadratic in them.
    let user_keys = user_samples(&input);
    let ids = neighbour_ids(tenant, table);

    // Injective, and undone by strip in its own table only.
    let mut encoded: Vec<(u64, u32, &[u8], Vec<u8>)> = Vec::new();
    for &(t, tab) in &ids {
        for key in &user_keys {
            let physical = table_key(t, tab, key);
            assert_eq!(table_key_inline(t, tab, key), physical);
            assert_eq!(strip(t, tab, &physical).as_deref(), Some(key.as_slice()));
            for &(t2, tab2) in &ids {
                if (t2, tab2) != (t, tab) {
                    assert_eq!(strip(t2, tab2, &physical), None, "{t}/{tab} vs {t2}/{tab2}");
                }
            }
            encoded.push((t, tab, key, physical));
        }
    }
    encoded.sort_by(|a, b| a.3.cmp(&b.3));
    for pair in encoded.windows(2) {
        if pair[0].3 == pair[1].3 {
            assert_eq!(
                (pair[0].0, pair[0].1, pair[0].2),
                (pair[1].0, pair[1].1, pair[1].2),
                "two triples share a physical key"
            );
        }
    }

    let mut physical: Vec<Vec<u8>> = encoded.into_iter().map(|e| e.3).collect();
    physical.extend(
        input
            .raw_keys
            .iter()
            .take(16)
            .map(|k| k[..k.len().min(40)].to_vec()),
    );
    let own = table_key(tenant, table, b"");
    for len in 0..=own.len() {
        physical.push(own[..len].to_vec());
    }
    physical.extend(successor(&own));

    let (lower, upper) = prefix_range(tenant, table, &input.prefix);
    assert_valid(&lower, &upper);
    let prefix_key = table_key(tenant, table, &input.prefix);
    for key in &physical {
        assert_eq!(
            contains(&lower, &upper, key),
            key.starts_with(&prefix_key),
            "prefix {:?}: physical key {key:?}",
            input.prefix
        );
    }

    let (start, end) = (input.start.as_bound(), input.end.as_bound());
    let clamped = range(tenant, table, start, end);
    if let Some((lower, upper)) = &clamped {
        assert_valid(lower, upper);
    }
    for key in &physical {
        let want = strip(tenant, table, key).is_some_and(|user| in_bounds((start, end), &user));
        let got = clamped
            .as_ref()
            .is_some_and(|(lower, upper)| contains(lower, upper, key));
        assert_eq!(got, want, "range {start:?}..{end:?}: physical key {key:?}");
    }

    let (tenant_start, tenant_end) = tenant_range(tenant);
    for key in &physical {
        let inside = key.as_slice() >= tenant_start.as_slice() && key < &tenant_end;
        assert_eq!(inside, key.starts_with(&tenant.to_be_bytes()));
    }

    // Orders and successors on a spread of the samples, against the nearest 32 of each.
    let all: Vec<&Vec<u8>> = physical.iter().chain(&user_keys).collect();
    let step = (all.len() / 48).max(1);
    for (i, a) in all.iter().enumerate().step_by(step) {
        check_successor(a, &physical);
        for b in all.iter().skip(i.saturating_sub(16)).take(32) {
            assert_eq!(compare_keys(a, b), a.cmp(b), "{a:?} {b:?}");
            assert_eq!(ByteKey::compare(a, b), a.cmp(b), "{a:?} {b:?}");
            if a < b {
                let separator = ByteKey::separator(a, b);
                assert!(a.as_slice() <= &*separator && &*separator < b.as_slice());
            }
        }
    }
}

fn user_samples(input: &Input) -> Vec<Vec<u8>> {
    let mut named: Vec<&[u8]> = vec![b"", &input.prefix];
    named.extend(input.user_keys.iter().map(|k| &k[..k.len().min(24)]));
    named.extend(input.start.key());
    named.extend(input.end.key());
    let mut out = Vec::new();
    for key in named.into_iter().take(10) {
        out.push(key.to_vec());
        out.push([key, &[0]].concat());
        out.push([key, &[0xFF]].concat());
        if let Some((_, shorter)) = key.split_last() {
            out.push(shorter.to_vec());
        }
        out.extend(successor(key));
    }
    out.sort();
    out.dedup();
    out
}

fn neighbour_ids(tenant: u64, table: u32) -> Vec<(u64, u32)> {
    let mut ids = vec![(tenant, table), (tenant, 0), (tenant, u32::MAX - 1)];
    ids.extend(tenant.checked_sub(1).map(|t| (t, table)));
    ids.extend(table.checked_sub(1).map(|tab| (tenant, tab)));
    if tenant < u64::MAX - 1 {
        ids.push((tenant + 1, 0));
        ids.push((tenant + 1, table));
    }
    if table < u32::MAX - 1 {
        ids.push((tenant, table + 1));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A range that is not inverted (an empty `[k, k)` is fine: redb yields nothing for it).
fn assert_valid(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) {
    if let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) =
        (lower, upper)
    {
        assert!(l <= u, "inverted range {lower:?}..{upper:?}");
    }
}

fn contains(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    in_bounds((as_slice(lower), as_slice(upper)), key)
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// `successor(p)` is the smallest key above every key starting with `p`.
fn check_successor(prefix: &[u8], samples: &[Vec<u8>]) {
    let next = successor(prefix);
    match &next {
        Some(next) => assert!(next.as_slice() > prefix && !next.starts_with(prefix)),
        None => assert!(prefix.iter().all(|&b| b == 0xFF)),
    }
    for key in samples.iter().step_by((samples.len() / 64).max(1)) {
        let below_next = next.as_ref().is_none_or(|n| key < n);
        assert_eq!(
            key.as_slice() >= prefix && below_next,
            key.starts_with(prefix),
            "successor({prefix:?}) = {next:?} and key {key:?}"
        );
    }
}
