//! Example plugin: a tenant's projects, numbered from 1, with an audit entry for every change.
//!
//! | function       | input (JSON)                                  | output (JSON)                          |
//! |----------------|-----------------------------------------------|----------------------------------------|
//! | `create`       | `{"name": "..."}`                             | the new id, e.g. `1`                   |
//! | `get`          | an id, e.g. `1`                               | `{"id": 1, "name": "..."}` or `null`   |
//! | `list`         | nothing, or `{"after": 10, "limit": 50}`      | `[{"id": 1, "name": "..."}, ...]`      |
//! | `batch_update` | `{"ids": [1, 2], "changes": {"name": "..."}}` | `{"updated": [1], "not_found": [2]}`   |
//!
//! Storage: table `projects`, key = id as 8 big-endian bytes (so keys sort by id), value =
//! [`NewProject`] in the engine's bincode encoding; table `meta`, key `next_id` = next id (u64).
//! Ids in a `batch_update` request are taken as given: ids the tenant does not have (including
//! ids that exist for other tenants) are reported in `not_found` and nothing is written for them.

use std::collections::BTreeSet;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use tenantry_sdk::{Error, Json, audit, export, kv};

const PROJECTS: &str = "projects";
const META: &str = "meta";
const NEXT_ID: &[u8] = b"next_id";
/// Longest accepted project name, in bytes.
const MAX_NAME_LEN: usize = 200;
/// Most projects `list` returns when the request gives no limit.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The input of `create`, stored as-is as the project record.
#[derive(Debug, Serialize, Deserialize)]
struct NewProject {
    name: String,
}

/// A project as returned by `get` and `list`.
#[derive(Debug, Serialize)]
struct ProjectView {
    id: u64,
    name: String,
}

/// The optional input of `list`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListRequest {
    /// Only projects with a larger id.
    after: Option<u64>,
    /// Most projects to return.
    limit: Option<usize>,
}

/// The input of `batch_update`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchUpdate {
    ids: Vec<u64>,
    changes: Changes,
}

/// Fields to change; absent fields are left alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Changes {
    name: Option<String>,
}

/// The output of `batch_update`.
#[derive(Debug, Serialize)]
struct BatchSummary {
    updated: Vec<u64>,
    not_found: Vec<u64>,
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::msg("a project name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::msg(format!(
            "a project name is at most {MAX_NAME_LEN} bytes, this one has {}",
            name.len()
        )));
    }
    Ok(())
}

/// Creates a project and returns its id.
fn create(Json(input): Json<NewProject>) -> Result<Json<u64>, Error> {
    check_name(&input.name)?;
    let id = kv::get_value::<u64>(META, NEXT_ID)?.unwrap_or(1);
    kv::put_value(PROJECTS, &id.to_be_bytes(), &input)?;
    kv::put_value(META, NEXT_ID, &(id + 1))?;
    audit::log("project.create", Some(&input.name))?;
    Ok(Json(id))
}

/// Returns the project with this id, or `null`.
fn get(Json(id): Json<u64>) -> Result<Json<Option<ProjectView>>, Error> {
    let project = kv::get_value::<NewProject>(PROJECTS, &id.to_be_bytes())?;
    Ok(Json(project.map(|p| ProjectView { id, name: p.name })))
}

/// Lists projects in id order.
fn list(Json(request): Json<Option<ListRequest>>) -> Result<Json<Vec<ProjectView>>, Error> {
    let request = request.unwrap_or_default();
    let limit = request.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let scan = match request.after {
        Some(after) => {
            let after = after.to_be_bytes();
            kv::range(PROJECTS, (Bound::Excluded(&after[..]), Bound::Unbounded))
        }
        None => kv::scan_prefix(PROJECTS, b""),
    };
    let mut projects = Vec::new();
    for entry in scan.take(limit) {
        let entry = entry?;
        let id = <[u8; 8]>::try_from(entry.key.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::msg("a key in table `projects` is not an 8-byte id"))?;
        let project: NewProject = entry.value_as()?;
        projects.push(ProjectView {
            id,
            name: project.name,
        });
    }
    Ok(Json(projects))
}

/// Applies `changes` to every listed project that exists; reports the others as not found.
fn batch_update(Json(request): Json<BatchUpdate>) -> Result<Json<BatchSummary>, Error> {
    if let Some(name) = &request.changes.name {
        check_name(name)?;
    }
    let mut seen = BTreeSet::new();
    let mut summary = BatchSummary {
        updated: Vec::new(),
        not_found: Vec::new(),
    };
    for id in request.ids {
        if !seen.insert(id) {
            continue;
        }
        let key = id.to_be_bytes();
        let Some(mut project) = kv::get_value::<NewProject>(PROJECTS, &key)? else {
            summary.not_found.push(id);
            continue;
        };
        if let Some(name) = &request.changes.name {
            project.name.clone_from(name);
        }
        kv::put_value(PROJECTS, &key, &project)?;
        audit::log(
            "project.update",
            Some(&format!("id={id} name={}", project.name)),
        )?;
        summary.updated.push(id);
    }
    Ok(Json(summary))
}

export!(create, get, list, batch_update);
