//! The redb tables that make up a tenantry database, and the records stored in them.
//!
//! | table                  | key                          | value                          |
//! |------------------------|------------------------------|--------------------------------|
//! | `tenantry.data`        | see [`crate::keys`]          | user value bytes               |
//! | `tenantry.tables`      | tenant u64 BE ++ table name  | table id (u32)                 |
//! | `tenantry.tenants`     | tenant id (u64)              | bincode [`TenantRecord`]       |
//! | `tenantry.tenant_names`| live tenant name             | tenant id (u64)                |
//! | `tenantry.audit`       | stream u64 BE ++ seq u64 BE  | bincode `StoredEntry`          |
//! | `tenantry.audit_heads` | stream (u64, 0 = system)     | seq u64 BE ++ 32-byte hash     |
//! | `tenantry.meta`        | counter name                 | u64                            |

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{Quota, TenantId, TenantInfo, TenantState, Usage};

pub(crate) const DATA: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tenantry.data");
pub(crate) const TABLES: TableDefinition<'_, &[u8], u32> = TableDefinition::new("tenantry.tables");
pub(crate) const TENANTS: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("tenantry.tenants");
pub(crate) const TENANT_NAMES: TableDefinition<'_, &str, u64> =
    TableDefinition::new("tenantry.tenant_names");
pub(crate) const AUDIT: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tenantry.audit");
pub(crate) const AUDIT_HEADS: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("tenantry.audit_heads");
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("tenantry.meta");

pub(crate) const META_NEXT_TENANT: &str = "next_tenant_id";
pub(crate) const META_NEXT_TABLE: &str = "next_table_id";
pub(crate) const META_FORMAT: &str = "format_version";
pub(crate) const FORMAT_VERSION: u64 = 1;

/// One tenant's row in `tenantry.tenants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub(crate) name: String,
    pub(crate) state: u8,
    pub(crate) quota: Quota,
    pub(crate) usage: Usage,
    pub(crate) created_micros: i64,
    /// Set once a deleted tenant's data has been purged completely.
    pub(crate) purged: bool,
}

impl TenantRecord {
    pub(crate) fn state(&self) -> TenantState {
        TenantState::from_u8(self.state)
    }

    pub(crate) fn info(&self, id: TenantId) -> TenantInfo {
        TenantInfo {
            id,
            name: self.name.clone(),
            state: self.state(),
            usage: self.usage,
            quota: self.quota,
            created_micros: self.created_micros,
        }
    }
}

pub(crate) fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes an engine record; a failure means the file was damaged or edited.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    match bincode::serde::decode_from_slice(bytes, bincode_config()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(Error::Corrupted(format!("{what}: trailing bytes"))),
        Err(e) => Err(Error::Corrupted(format!("{what}: {e}"))),
    }
}

/// Key of `tenantry.audit`.
pub(crate) fn audit_key(stream: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&stream.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The `(stream, seq)` of a `tenantry.audit` key.
pub(crate) fn split_audit_key(key: &[u8]) -> Option<(u64, u64)> {
    let stream = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    (key.len() == 16).then_some((stream, seq))
}

/// Value of `tenantry.audit_heads`.
pub(crate) fn encode_head(seq: u64, hash: &[u8; 32]) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&seq.to_be_bytes());
    value[8..].copy_from_slice(hash);
    value
}

pub(crate) fn decode_head(value: &[u8]) -> Result<(u64, [u8; 32])> {
    let corrupted = || Error::Corrupted("malformed audit head".into());
    if value.len() != 40 {
        return Err(corrupted());
    }
    let seq = u64::from_be_bytes(value[..8].try_into().map_err(|_| corrupted())?);
    let hash = value[8..].try_into().map_err(|_| corrupted())?;
    Ok((seq, hash))
}
