//! `plugin install|list|remove`, on a tenant's behalf and audited as the operator's actions.

use std::path::Path;

use indicatif::HumanBytes;
use serde_json::{Value, json};
use tenantry_host::PluginInfo;

use crate::cli::PluginCommand;
use crate::exit::{CliError, Code};
use crate::output::{Cell, Style, Table, Ui};
use crate::session::{Session, label};
use crate::text;

use super::tenant::short;

pub(super) fn run(session: &Session, command: PluginCommand, ui: &mut Ui) -> Result<(), CliError> {
    match command {
        PluginCommand::Install { tenant, name, file } => {
            let info = session.tenant(&tenant)?;
            let wasm = read_module(&file)?;
            let plugin = session
                .host()?
                .install_for(session.op(), info.id, &name, &wasm)
                .map_err(|e| {
                    CliError::from(e).context(format!(
                        "cannot install {} as plugin {name:?} for tenant {}",
                        file.display(),
                        label(&info)
                    ))
                })?;
            ui.line(format!(
                "installed plugin {} for tenant {}: version {}, {}, exports {}",
                plugin.name,
                label(&info),
                short(&plugin.version),
                HumanBytes(plugin.size),
                plugin.exports.join(", ")
            ))
        }
        PluginCommand::List { tenant, json } => {
            let info = session.tenant(&tenant)?;
            let plugins = session
                .host()?
                .list_plugins_for(session.op(), info.id)
                .map_err(|e| {
                    CliError::from(e).context(format!(
                        "cannot list the plugins of tenant {}",
                        label(&info)
                    ))
                })?;
            if json.json {
                return ui.json(&Value::Array(plugins.iter().map(plugin_json).collect()));
            }
            if plugins.is_empty() {
                return ui.line(format!("tenant {} has no plugins", label(&info)));
            }
            let mut table =
                Table::new(&["NAME", "VERSION", "SIZE", "INSTALLED", "EXPORTS"]).right(&[2]);
            for p in &plugins {
                table.push(vec![
                    Cell::styled(p.name.clone(), Style::Cyan),
                    short(&p.version).into(),
                    HumanBytes(p.size).to_string().into(),
                    text::time(p.installed_micros).into(),
                    p.exports.join(", ").into(),
                ]);
            }
            ui.table(&table)
        }
        PluginCommand::Remove { tenant, name } => {
            let info = session.tenant(&tenant)?;
            session
                .host()?
                .remove_for(session.op(), info.id, &name)
                .map_err(|e| {
                    CliError::from(e).context(format!(
                        "cannot remove plugin {name:?} of tenant {}",
                        label(&info)
                    ))
                })?;
            ui.line(format!(
                "removed plugin {name} from tenant {}",
                label(&info)
            ))
        }
    }
}

/// The module in `file`: binary wasm as is; a `.wat` file is compiled from text first.
fn read_module(file: &Path) -> Result<Vec<u8>, CliError> {
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let is_text = !bytes.starts_with(b"\0asm") && file.extension().is_some_and(|e| e == "wat");
    if !is_text {
        return Ok(bytes);
    }
    wat::parse_bytes(&bytes)
        .map(|wasm| wasm.into_owned())
        .map_err(|e| {
            CliError::new(
                Code::PluginRefused,
                // wat's message goes on with a source excerpt; its first line says what is wrong.
                format!(
                    "{} is not a valid WAT module: {}",
                    file.display(),
                    e.to_string().lines().next().unwrap_or_default()
                ),
            )
        })
}

/// The JSON view of an installed plugin.
pub(crate) fn plugin_json(p: &PluginInfo) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "size": p.size,
        "exports": p.exports,
        "installed": text::time_precise(p.installed_micros),
        "installed_micros": p.installed_micros,
    })
}
