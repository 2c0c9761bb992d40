//! The audit log: who did what to which resource, through which client, from where.

use serde_json::Value;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{AuditEntry, ClientId, UserId};
use crate::store::SharedStore;

/// One auditable action, before it is stamped.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub ip: String,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(
        action: &'static str,
        resource_type: &'static str,
        resource_id: impl ToString,
    ) -> Self {
        Self {
            user_id: None,
            client_id: None,
            action,
            resource_type,
            resource_id: resource_id.to_string(),
            ip: String::new(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn by(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    pub fn client(mut self, client: ClientId) -> Self {
        self.client_id = Some(client);
        self
    }

    pub fn from_ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = ip.into();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Auditor {
    store: SharedStore,
    clock: SharedClock,
}

impl Auditor {
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// Writes the entry. A failed write is logged, not returned: the audited action already
    /// happened, and failing the request now would only hide that.
    pub async fn record(&self, event: AuditEvent) {
        let entry = AuditEntry {
            id: Uuid::new_v4(),
            time: self.clock.now(),
            user_id: event.user_id,
            client_id: event.client_id,
            action: event.action.to_owned(),
            resource_type: event.resource_type.to_owned(),
            resource_id: event.resource_id,
            ip: event.ip,
            details: event.details,
        };
        let action = entry.action.clone();
        if let Err(err) = self.store.insert_audit_log(entry).await {
            tracing::error!(error = %err, action = %action, "could not write the audit log");
        }
    }
}
