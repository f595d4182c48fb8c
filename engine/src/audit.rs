//! The audit log: entries, their hash chain, queries, verification and export.
//!
//! Each tenant has its own stream, and operator actions also go to the system stream (stream 0).
//! Within a stream, `seq` is gapless from 1 and every entry carries
//!
//! ```text
//! hash = BLAKE3( "tenantry.audit.v1" || stream u64 LE || seq u64 LE || timestamp i64 LE
//!              || str(action) || opt(actor) || opt(ip) || opt(request_id) || opt(target)
//!              || opt(message) || opt(origin) || outcome || opt(value_digest) || by_operator u8
//!              || previous hash )
//! str(s)   = u32 LE length || bytes             opt(x) = 0x00 | 0x01 || x
//! outcome  = 0x00 ok | 0x01 no change | 0x02 || str(reason) denied | 0x03 || str(reason) failed
//! ```
//!
//! where the previous hash of seq 1 is 32 zero bytes, and `value_digest` is the BLAKE3 hash of
//! the value a put wrote. The newest `(seq, hash)` of every stream is also kept in
//! `tenantry.tails`, written in the same transaction. How entries are stored (one shared
//! log in commit order, each stream a linked list through it) is described in
//! [`crate::schema`]; the chain does not depend on it.
//!
//! [`crate::Engine::verify_audit`] recomputes the chain, so an entry edited, inserted, deleted or
//! moved through redb's own API (which keeps redb's checksums valid) breaks it. Someone able to
//! rewrite the whole file can recompute every hash; against that, a tenant keeps the
//! `(audit_seq, audit_head)` of a [`crate::CommitReceipt`] and checks it with
//! [`crate::Engine::verify_audit_against`], which also catches a truncated tail or a file rolled
//! back to before that point.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema;

mod stream;

use crate::types::TenantId;
use stream::StreamLog;

/// The outcome recorded with an audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outcome {
    /// The action happened.
    Ok,
    /// The action was carried out but changed nothing (for example deleting a missing key).
    NoChange,
    /// The action was refused (quota, tenant state, limits); nothing changed.
    Denied(String),
    /// The action failed or was rolled back; nothing changed.
    Failed(String),
}

impl Outcome {
    /// Whether the action happened.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok | Outcome::NoChange)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::NoChange => f.write_str("no change"),
            Outcome::Denied(reason) => write!(f, "denied: {reason}"),
            Outcome::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// An audit stream: one per tenant, plus the operators' system stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AuditStream {
    /// Operator actions that concern the installation as a whole.
    System,
    /// One tenant's stream.
    Tenant(TenantId),
}

impl AuditStream {
    pub(crate) fn raw(self) -> u64 {
        match self {
            AuditStream::System => 0,
            AuditStream::Tenant(t) => t.get(),
        }
    }

    pub(crate) fn from_raw(raw: u64) -> Self {
        match raw {
            0 => AuditStream::System,
            n => AuditStream::Tenant(TenantId::from_raw(n)),
        }
    }
}

impl fmt::Display for AuditStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditStream::System => f.write_str("the system stream"),
            AuditStream::Tenant(t) => write!(f, "tenant {t}"),
        }
    }
}

/// One entry of an audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The stream the entry belongs to.
    pub stream: AuditStream,
    /// Position in the stream, gapless from 1.
    pub seq: u64,
    /// When the entry was committed, in microseconds since the Unix epoch (non-decreasing within
    /// a stream).
    pub timestamp_micros: i64,
    /// What happened: `kv.put`, `kv.delete`, `tenant.create`, … or the caller's own action.
    pub action: String,
    /// Who acted: the context's actor, or the operator's name.
    pub actor: Option<String>,
    /// The actor's IP address.
    pub ip: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// What was acted on, for example `projects/p1` (table and key).
    pub target: Option<String>,
    /// Free text from the caller, or the reason an operator gave.
    pub message: Option<String>,
    /// Where a plugin acted: its name, version and invocation.
    pub origin: Option<String>,
    /// Whether the action happened.
    pub outcome: Outcome,
    /// Whether an operator (not the tenant) acted.
    pub by_operator: bool,
    /// BLAKE3 digest of the value a put wrote.
    #[serde(serialize_with = "hex_opt")]
    pub value_digest: Option<[u8; 32]>,
    /// The entry's chain hash.
    #[serde(serialize_with = "hex32")]
    pub hash: [u8; 32],
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex of a hash, as the CLI prints it.
pub fn hash_hex(hash: &[u8; 32]) -> String {
    hex(hash)
}

fn hex32<S: serde::Serializer>(hash: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex(hash))
}

fn hex_opt<S: serde::Serializer>(
    hash: &Option<[u8; 32]>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match hash {
        Some(h) => s.serialize_some(&hex(h)),
        None => s.serialize_none(),
    }
}

/// Filters for reading an audit log; all are optional and combine with AND.
///
/// ```
/// use tenantry_engine::AuditQuery;
/// let q = AuditQuery::default().action_prefix("kv.").actor("user:42").limit(50);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only entries at or after this time (µs since the epoch).
    pub since_micros: Option<i64>,
    /// Only entries strictly before this time.
    pub until_micros: Option<i64>,
    /// Only entries whose action starts with this.
    pub action_prefix: Option<String>,
    /// Only entries by this actor.
    pub actor: Option<String>,
    /// Only entries with a seq below this (to page backwards: pass the last seq you saw).
    pub before_seq: Option<u64>,
    /// At most this many entries (all if `None`).
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Entries at or after `micros`.
    pub fn since(mut self, micros: i64) -> Self {
        self.since_micros = Some(micros);
        self
    }
    /// Entries strictly before `micros`.
    pub fn until(mut self, micros: i64) -> Self {
        self.until_micros = Some(micros);
        self
    }
    /// Entries whose action starts with `prefix`.
    pub fn action_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.action_prefix = Some(prefix.into());
        self
    }
    /// Entries by `actor`.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    /// Entries with a seq below `seq`.
    pub fn before_seq(mut self, seq: u64) -> Self {
        self.before_seq = Some(seq);
        self
    }
    /// At most `limit` entries.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn matches(&self, e: &StoredEntry<'_>) -> bool {
        self.until_micros.is_none_or(|u| e.ts < u)
            && self
                .action_prefix
                .as_deref()
                .is_none_or(|p| e.action.starts_with(p))
            && self
                .actor
                .as_deref()
                .is_none_or(|a| e.actor.as_deref() == Some(a))
    }
}

/// Longest action accepted, in bytes.
pub const MAX_ACTION_LEN: usize = 128;

/// Checks an audit action that request code or a plugin supplies, as [`crate::WriteTxn::audit`]
/// does: 1 to [`MAX_ACTION_LEN`] bytes of printable ASCII without spaces (so that no
/// look-alike of a reserved name can pass for one), outside the reserved namespaces
/// ([`is_reserved_action`]). Components such as the plugin host check what a plugin names with
/// it, since their own handles may record reserved actions.
///
/// # Errors
/// [`Error::InvalidField`] for an empty, over-long or non-ASCII action, or one with spaces or
/// control characters; [`Error::ReservedAction`] for a reserved one.
pub fn check_request_action(action: &str) -> Result<()> {
    let event = AuditEvent::new(action.to_owned());
    event.validate()?;
    event.check_reserved(false)
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Namespaces of audit actions that only the engine, its components (the plugin host) and
/// operators record; see [`is_reserved_action`].
pub(crate) const RESERVED_ACTION_NAMESPACES: [&str; 9] = [
    "kv.",
    "tenant.",
    "operator.",
    "unscoped.",
    "plugin.",
    "audit.",
    "engine.",
    "system.",
    "tenantry.",
];

/// Whether `action` belongs to a namespace that only the engine, its components and operators
/// record: `kv.*` (data changes and plugin host calls), `tenant.*`, `operator.*`, `unscoped.*`,
/// `plugin.*`, and `audit.*`, `engine.*`, `system.*`, `tenantry.*` for later use; also the bare
/// names (`kv`), compared ignoring ASCII case and surrounding white space, so that `KV.put` or
/// ` kv.put` cannot pass for `kv.put`.
///
/// [`crate::WriteTxn::audit`] refuses such actions with [`crate::Error::ReservedAction`] unless
/// the transaction's handle came from [`crate::Engine::component_handle`],
/// [`crate::Engine::reserved_tables`] or [`crate::Engine::reserved_handle`]; the plugin host
/// refuses them for plugins.
pub fn is_reserved_action(action: &str) -> bool {
    let action = action.trim();
    RESERVED_ACTION_NAMESPACES.iter().any(|namespace| {
        let bare = &namespace[..namespace.len() - 1];
        action
            .get(..namespace.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(namespace))
            || action.eq_ignore_ascii_case(bare)
    })
}
/// Longest audit target accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 512;
/// Longest audit message accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// An audit event before it has a place in a stream: what happened, to what, and how it ended.
/// The engine adds the time, the actor, ip, request id and origin from the context, the seq and
/// the hash.
///
/// ```
/// use tenantry_engine::{AuditEvent, Outcome};
/// let event = AuditEvent::new("kv.get").target("projects/p1").outcome(Outcome::NoChange);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub(crate) action: Cow<'static, str>,
    pub(crate) target: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) outcome: Outcome,
    pub(crate) value_digest: Option<[u8; 32]>,
}

impl AuditEvent {
    /// An event with outcome [`Outcome::Ok`]. `action` is a `&'static str` or a `String`.
    pub fn new(action: impl Into<Cow<'static, str>>) -> Self {
        AuditEvent {
            action: action.into(),
            target: None,
            message: None,
            outcome: Outcome::Ok,
            value_digest: None,
        }
    }

    /// Sets what was acted on.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets a free-text message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub(crate) fn with_value_digest(mut self, value: &[u8]) -> Self {
        self.value_digest = Some(*blake3::hash(value).as_bytes());
        self
    }

    /// Marks an event that would have happened as failed, because its transaction rolled back.
    pub(crate) fn mark_failed(&mut self, reason: &str) {
        if matches!(self.outcome, Outcome::Ok | Outcome::NoChange) {
            self.outcome = Outcome::Failed(reason.to_owned());
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let field = |field, value: Option<&str>, max: usize| match value {
            Some(v) if v.len() > max => Err(Error::InvalidField {
                field,
                reason: "too long",
            }),
            _ => Ok(()),
        };
        if self.action.is_empty() {
            return Err(Error::InvalidField {
                field: "audit action",
                reason: "must not be empty",
            });
        }
        field("audit action", Some(&self.action), MAX_ACTION_LEN)?;
        field("audit target", self.target.as_deref(), MAX_TARGET_LEN)?;
        field("audit message", self.message.as_deref(), MAX_MESSAGE_LEN)?;
        if let Outcome::Denied(r) | Outcome::Failed(r) = &self.outcome {
            field("audit outcome", Some(r), MAX_MESSAGE_LEN)?;
        }
        Ok(())
    }

    /// Whether the event may be recorded through a handle with `component` privilege. Request
    /// code's actions are printable ASCII without spaces, so that no look-alike of a reserved
    /// name (`\u{200B}kv.put`, `кv.put`, `kv .put`, an escape sequence) can pass for one.
    pub(crate) fn check_reserved(&self, component: bool) -> Result<()> {
        if component {
            return Ok(());
        }
        if !self.action.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidField {
                field: "audit action",
                reason: "must be printable ASCII without spaces",
            });
        }
        if is_reserved_action(&self.action) {
            return Err(Error::ReservedAction {
                action: cut(self.action.to_string(), MAX_ACTION_LEN),
            });
        }
        Ok(())
    }

    /// The event with its target, message and outcome reason cut to the field limits, so that
    /// a component's account of what happened is never refused for its length.
    pub(crate) fn fitted(mut self) -> Self {
        self.target = self.target.map(|t| cut(t, MAX_TARGET_LEN));
        self.message = self.message.map(|m| cut(m, MAX_MESSAGE_LEN));
        self.outcome = match self.outcome {
            Outcome::Denied(r) => Outcome::Denied(cut(r, MAX_MESSAGE_LEN)),
            Outcome::Failed(r) => Outcome::Failed(cut(r, MAX_MESSAGE_LEN)),
            other => other,
        };
        self
    }

    pub(crate) fn approx_size(&self) -> usize {
        64 + self.action.len()
            + self.target.as_ref().map_or(0, String::len)
            + self.message.as_ref().map_or(0, String::len)
    }
}

/// The stored form of an entry (body of a `tenantry.audit_log` value); stream and seq are in
/// its header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredEntry<'a> {
    pub(crate) ts: i64,
    #[serde(borrow)]
    pub(crate) action: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) actor: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) target: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) origin: Option<Cow<'a, str>>,
    pub(crate) outcome: Outcome,
    pub(crate) value_digest: Option<[u8; 32]>,
    pub(crate) by_operator: bool,
    pub(crate) hash: [u8; 32],
}

impl<'a> StoredEntry<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self> {
        match bincode::serde::borrow_decode_from_slice(bytes, schema::decode_config()) {
            Ok((entry, used)) if used == bytes.len() => Ok(entry),
            Ok(_) => Err(Error::Corrupted("audit entry: trailing bytes".into())),
            Err(e) => Err(Error::Corrupted(format!("audit entry: {e}"))),
        }
    }

    /// The chain hash of this entry at `(stream, seq)` after `prev`.
    pub(crate) fn compute_hash(&self, stream: u64, seq: u64, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"tenantry.audit.v1");
        h.update(&stream.to_le_bytes());
        h.update(&seq.to_le_bytes());
        h.update(&self.ts.to_le_bytes());
        put_str(&mut h, &self.action);
        for field in [
            &self.actor,
            &self.ip,
            &self.request_id,
            &self.target,
            &self.message,
            &self.origin,
        ] {
            match field {
                None => h.update(&[0]),
                Some(s) => put_str(h.update(&[1]), s),
            };
        }
        match &self.outcome {
            Outcome::Ok => h.update(&[0]),
            Outcome::NoChange => h.update(&[1]),
            Outcome::Denied(r) => put_str(h.update(&[2]), r),
            Outcome::Failed(r) => put_str(h.update(&[3]), r),
        };
        match &self.value_digest {
            None => h.update(&[0]),
            Some(d) => h.update(&[1]).update(d),
        };
        h.update(&[u8::from(self.by_operator)]);
        h.update(prev);
        *h.finalize().as_bytes()
    }

    pub(crate) fn into_entry(self, stream: u64, seq: u64) -> AuditEntry {
        let own = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
        AuditEntry {
            stream: AuditStream::from_raw(stream),
            seq,
            timestamp_micros: self.ts,
            action: self.action.into_owned(),
            actor: own(self.actor),
            ip: own(self.ip),
            request_id: own(self.request_id),
            target: own(self.target),
            message: own(self.message),
            origin: own(self.origin),
            outcome: self.outcome,
            by_operator: self.by_operator,
            value_digest: self.value_digest,
            hash: self.hash,
        }
    }
}

/// The entry that `draft`, recorded by `actor`, becomes at `(stream, seq)` after the entry
/// whose hash is `prev`, stamped `ts`: the one place an entry is built, whichever backend
/// stores it, so that every backend's chains are the same.
pub(crate) fn chain_entry<'a>(
    stream: u64,
    seq: u64,
    prev: &[u8; 32],
    ts: i64,
    actor: &'a crate::context::Actor,
    draft: AuditEvent,
) -> StoredEntry<'a> {
    let borrow = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    let mut entry = StoredEntry {
        ts,
        action: draft.action,
        actor: borrow(&actor.actor),
        ip: borrow(&actor.ip),
        request_id: borrow(&actor.request_id),
        target: draft.target.map(Cow::Owned),
        message: draft.message.map(Cow::Owned),
        origin: borrow(&actor.origin),
        outcome: draft.outcome,
        value_digest: draft.value_digest,
        by_operator: actor.by_operator,
        hash: [0; 32],
    };
    entry.hash = entry.compute_hash(stream, seq, prev);
    entry
}

fn put_str<'h>(h: &'h mut blake3::Hasher, s: &str) -> &'h mut blake3::Hasher {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    h.update(&len.to_le_bytes()).update(s.as_bytes())
}

/// Reads `stream` newest first, applying `query`.
pub(crate) fn query(
    txn: &redb::ReadTransaction,
    stream: AuditStream,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>> {
    let Some(log) = StreamLog::open(txn, stream)? else {
        return Ok(Vec::new());
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let Some((seq, pos)) = log.start_below(query.before_seq)? else {
        return Ok(Vec::new());
    };
    let below = query.before_seq.unwrap_or(u64::MAX);
    let raw = stream.raw();
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    log.walk_back(seq, pos, |raw_entry| {
        if raw_entry.seq >= below {
            return Ok(true);
        }
        let entry = raw_entry.decode()?;
        if query.since_micros.is_some_and(|s| entry.ts < s) {
            return Ok(false); // timestamps never decrease within a stream
        }
        if query.matches(&entry) {
            out.push(entry.into_entry(raw, raw_entry.seq));
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Recomputes the chain of `stream`; with `anchor`, also requires the entry at that seq to have
/// that hash. Returns the number of entries verified.
pub(crate) fn verify(
    txn: &redb::ReadTransaction,
    stream: AuditStream,
    anchor: Option<(u64, &[u8; 32])>,
) -> Result<u64> {
    let mut chain = ChainCheck::new(stream, anchor);
    let Some(log) = StreamLog::open(txn, stream)? else {
        return chain.finish(None);
    };
    log.for_each(|raw_entry| {
        let seq = raw_entry.seq;
        let entry = raw_entry
            .decode()
            .map_err(|e| chain.tampered(seq, format!("entry does not decode ({e})")))?;
        chain.check(seq, &entry)
    })?;
    chain.finish(log.head().map(|head| (head.seq, head.hash)))
}

/// Recomputes a stream's chain entry by entry, oldest first, whichever backend reads it.
pub(crate) struct ChainCheck<'a> {
    stream: AuditStream,
    anchor: Option<(u64, &'a [u8; 32])>,
    prev: [u8; 32],
    count: u64,
}

impl<'a> ChainCheck<'a> {
    pub(crate) fn new(stream: AuditStream, anchor: Option<(u64, &'a [u8; 32])>) -> Self {
        ChainCheck {
            stream,
            anchor,
            prev: [0; 32],
            count: 0,
        }
    }

    pub(crate) fn tampered(&self, seq: u64, reason: String) -> Error {
        Error::AuditTampered {
            stream: self.stream,
            seq,
            reason,
        }
    }

    /// Checks the entry at `seq`, the one after the last checked.
    pub(crate) fn check(&mut self, seq: u64, entry: &StoredEntry<'_>) -> Result<()> {
        if seq != self.count + 1 {
            return Err(self.tampered(self.count + 1, "the entry is missing".into()));
        }
        let hash = entry.compute_hash(self.stream.raw(), seq, &self.prev);
        if hash != entry.hash {
            return Err(self.tampered(seq, "hash does not match contents".into()));
        }
        if let Some((anchor_seq, anchor_hash)) = self.anchor
            && anchor_seq == seq
            && &hash != anchor_hash
        {
            return Err(self.tampered(seq, "hash differs from the kept head".into()));
        }
        self.prev = hash;
        self.count = seq;
        Ok(())
    }

    /// After the last entry: checks the stream's recorded head `(seq, hash)`, if it has one,
    /// and that the kept anchor was reached; returns the number of entries verified.
    pub(crate) fn finish(self, head: Option<(u64, [u8; 32])>) -> Result<u64> {
        if let Some((seq, hash)) = head
            && (seq != self.count || (seq > 0 && hash != self.prev))
        {
            return Err(self.tampered(
                seq,
                "the recorded head's hash differs from the last entry".into(),
            ));
        }
        let count = self.count;
        if let Some((anchor_seq, _)) = self.anchor
            && anchor_seq > count
        {
            return Err(self.tampered(
                count + 1,
                format!("log ends at seq {count}, before the kept head at seq {anchor_seq}"),
            ));
        }
        Ok(count)
    }
}

/// Writes `stream`, oldest first, as JSON Lines; returns the number of entries written.
pub(crate) fn write_jsonl(
    txn: &redb::ReadTransaction,
    stream: AuditStream,
    mut out: impl Write,
) -> Result<u64> {
    let Some(log) = StreamLog::open(txn, stream)? else {
        return Ok(0);
    };
    let raw = stream.raw();
    let count = log.for_each(|raw_entry| {
        let entry = raw_entry.decode()?.into_entry(raw, raw_entry.seq);
        serde_json::to_writer(&mut out, &entry).map_err(|e| Error::Encode(e.to_string()))?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    out.flush()?;
    Ok(count)
}
