//! Who is acting: a tenant's request [`Context`] or an [`Operator`].
//!
//! The two are distinct types so that one can never be passed where the other is required: tenant
//! code cannot claim operator power, and operator actions are never recorded as a tenant's own.

use crate::error::{Error, Result};
use crate::types::TenantId;

/// Longest accepted actor, ip, request id or origin, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// The request context built at the edge of a request: which tenant, and who is asking.
///
/// Everything here except the tenant is recorded in audit entries as given.
///
/// ```
/// use tenantry_engine::{Context, TenantId};
/// let ctx = Context::tenant(TenantId::from_raw(1)).actor("user:42").ip("203.0.113.9").request_id("req-7");
/// assert_eq!(ctx.tenant_id(), TenantId::from_raw(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub(crate) tenant: TenantId,
    pub(crate) actor: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) origin: Option<String>,
}

impl Context {
    /// A context acting for `tenant`.
    pub fn tenant(tenant: TenantId) -> Self {
        Context {
            tenant,
            actor: None,
            ip: None,
            request_id: None,
            origin: None,
        }
    }

    /// Sets the acting user (for example `"user:42"`).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the client's IP address.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Sets the request id, to correlate audit entries with application logs.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the origin recorded in audit entries: the plugin host names the plugin, its version
    /// and the invocation here.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The tenant this context acts for.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The actor, if set.
    pub fn actor_name(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// The origin, if set.
    pub fn origin_name(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_field("actor", self.actor.as_deref())?;
        check_field("ip", self.ip.as_deref())?;
        check_field("request id", self.request_id.as_deref())?;
        check_field("origin", self.origin.as_deref())
    }
}

/// An operator identity: the only thing that can administer tenants or read across them.
///
/// ```
/// use tenantry_engine::Operator;
/// let op = Operator::new("ops:alice").ip("198.51.100.1").request_id("change-1234");
/// assert_eq!(op.name(), "ops:alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub(crate) name: String,
    pub(crate) ip: Option<String>,
    pub(crate) request_id: Option<String>,
}

impl Operator {
    /// An operator called `name` (for example `"ops:alice"`).
    pub fn new(name: impl Into<String>) -> Self {
        Operator {
            name: name.into(),
            ip: None,
            request_id: None,
        }
    }

    /// Sets the operator's IP address.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Sets a request or change id.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::InvalidField {
                field: "operator name",
                reason: "must not be empty",
            });
        }
        check_field("operator name", Some(&self.name))?;
        check_field("ip", self.ip.as_deref())?;
        check_field("request id", self.request_id.as_deref())
    }
}

fn check_field(field: &'static str, value: Option<&str>) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    if value.len() > MAX_FIELD_LEN {
        return Err(Error::InvalidField {
            field,
            reason: "longer than 256 bytes",
        });
    }
    if value.contains('\0') {
        return Err(Error::InvalidField {
            field,
            reason: "contains a NUL byte",
        });
    }
    Ok(())
}

/// Who an audit entry is attributed to; built from a [`Context`] or an [`Operator`]. Shared,
/// so that every commit of a handle carries it without copying its strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Actor(std::sync::Arc<ActorFields>);

impl std::ops::Deref for Actor {
    type Target = ActorFields;

    fn deref(&self) -> &ActorFields {
        &self.0
    }
}

impl Actor {
    /// Bytes of the actor's fields that every audit entry it records repeats.
    pub(crate) fn stored_len(&self) -> usize {
        [&self.actor, &self.ip, &self.request_id, &self.origin]
            .into_iter()
            .map(|field| field.as_ref().map_or(0, String::len))
            .sum()
    }

    /// The same actor acting through `origin` (a plugin invocation).
    pub(crate) fn with_origin(&self, origin: String) -> Actor {
        Actor(std::sync::Arc::new(ActorFields {
            origin: Some(origin),
            ..(*self.0).clone()
        }))
    }
}

/// The fields of an [`Actor`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ActorFields {
    pub(crate) actor: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) by_operator: bool,
}

impl From<&Context> for Actor {
    fn from(ctx: &Context) -> Self {
        Actor::from(ActorFields {
            actor: ctx.actor.clone(),
            ip: ctx.ip.clone(),
            request_id: ctx.request_id.clone(),
            origin: ctx.origin.clone(),
            by_operator: false,
        })
    }
}

impl From<&Operator> for Actor {
    fn from(op: &Operator) -> Self {
        Actor::from(ActorFields {
            actor: Some(op.name.clone()),
            ip: op.ip.clone(),
            request_id: op.request_id.clone(),
            origin: None,
            by_operator: true,
        })
    }
}

impl From<ActorFields> for Actor {
    fn from(fields: ActorFields) -> Self {
        Actor(std::sync::Arc::new(fields))
    }
}
