//! `stats`: per-tenant usage, quotas, plugin limits and plugin counts.

use indicatif::{HumanBytes, HumanCount};
use serde_json::{Value, json};
use tenantry_engine::TenantState;
use tenantry_host::Limits;

use crate::exit::CliError;
use crate::output::{Cell, Style, Table, Ui};
use crate::session::Session;

use super::tenant::{limits_json, quota_text, state_cell, tenant_json};

pub(super) fn run(session: &Session, json: bool, ui: &mut Ui) -> Result<(), CliError> {
    let all = session.engine().all_tenants()?;
    let deleted = all
        .iter()
        .filter(|t| t.state == TenantState::Deleted)
        .count();
    let live: Vec<_> = all
        .into_iter()
        .filter(|t| t.state != TenantState::Deleted)
        .collect();
    let host = session.host()?;
    // Plugins and limits live in the tenant's reserved tables, which cannot be read while it
    // is suspended: shown as unknown then.
    let rows: Vec<_> = live
        .iter()
        .map(|t| {
            let plugins = host.list_plugins_for(session.op(), t.id).ok();
            let limits: Option<Limits> = host.limits_for(session.op(), t.id).ok();
            (t, plugins.map(|p| p.len()), limits)
        })
        .collect();
    let file_bytes = std::fs::metadata(session.path()).map_or(0, |m| m.len());
    let (keys, bytes, audit) = live.iter().fold((0, 0, 0), |(k, b, a), t| {
        (
            k + t.usage.keys,
            b + t.usage.bytes,
            a + t.usage.audit_entries,
        )
    });
    if json {
        let tenants = rows
            .iter()
            .map(|(t, plugins, limits)| {
                let mut value = tenant_json(t);
                value["plugins"] = json!(plugins);
                value["limits"] = limits.as_ref().map_or(Value::Null, limits_json);
                value
            })
            .collect::<Vec<_>>();
        return ui.json(&json!({
            "database": { "path": session.path().display().to_string(), "file_bytes": file_bytes },
            "tenants": tenants,
            "deleted_tenants": deleted,
            "totals": { "keys": keys, "bytes": bytes, "audit_entries": audit },
        }));
    }
    let mut table = Table::new(&[
        "TENANT", "STATE", "KEYS", "DATA", "QUOTA", "AUDIT", "PLUGINS", "FUEL", "WALL", "MEMORY",
    ])
    .right(&[2, 3, 5, 6, 7, 8, 9]);
    let unknown = || Cell::styled("?", Style::Dim);
    for (t, plugins, limits) in &rows {
        let mut row = vec![
            Cell::styled(format!("{} ({})", t.name, t.id), Style::Cyan),
            state_cell(t.state),
            HumanCount(t.usage.keys).to_string().into(),
            HumanBytes(t.usage.bytes).to_string().into(),
            quota_text(&t.quota).into(),
            HumanCount(t.usage.audit_entries).to_string().into(),
            plugins.map_or_else(unknown, |n| n.to_string().into()),
        ];
        match limits {
            Some(l) => row.extend([
                HumanCount(l.fuel).to_string().into(),
                format!("{:?}", l.wall_time).into(),
                HumanBytes(l.memory_bytes).to_string().into(),
            ]),
            None => row.extend([unknown(), unknown(), unknown()]),
        }
        table.push(row);
    }
    if !table.is_empty() {
        ui.table(&table)?;
    }
    ui.line(format!(
        "{} live tenants ({deleted} deleted, not shown): {} keys, {} of data, {} audit entries; \
         database file {} is {}",
        live.len(),
        HumanCount(keys),
        HumanBytes(bytes),
        HumanCount(audit),
        session.path().display(),
        HumanBytes(file_bytes)
    ))
}
