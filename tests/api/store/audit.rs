//! The audit log.

use chrono::{DateTime, Utc};
use coderd::domain::{AuditEntry, ClientId, UserId};
use coderd::store::Constraint;
use serde_json::json;
use uuid::Uuid;

use super::{assert_conflict_on, at, open};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    audit_entries_are_listed_newest_first,
    a_batch_of_audit_entries_is_written_whole_or_not_at_all,
);

fn entry(action: &str, time: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        id: Uuid::new_v4(),
        time,
        user_id: Some(UserId(Uuid::new_v4())),
        client_id: None,
        action: action.to_owned(),
        resource_type: "oauth2_app".to_owned(),
        resource_id: Uuid::new_v4().to_string(),
        ip: "192.0.2.7".to_owned(),
        details: json!({"name": "app ✓", "scopes": ["coder:all"], "nested": {"n": 1}}),
    }
}

async fn audit_entries_are_listed_newest_first(backend: Backend) {
    let (store, _db) = open(&backend).await;
    assert!(store.list_audit_logs(10).await.unwrap().is_empty());
    store.insert_audit_logs(&[]).await.unwrap();
    assert!(store.list_audit_logs(10).await.unwrap().is_empty());

    let oldest = entry("login", at(0));
    let mut anonymous = entry("token", at(2));
    anonymous.user_id = None;
    anonymous.client_id = Some(ClientId(Uuid::new_v4()));
    anonymous.ip = String::new();
    anonymous.details = json!({});
    let newest = entry("revoke", at(3));
    store
        .insert_audit_logs(&[oldest.clone(), newest.clone()])
        .await
        .unwrap();
    store
        .insert_audit_logs(std::slice::from_ref(&anonymous))
        .await
        .unwrap();

    assert_eq!(
        store.list_audit_logs(10).await.unwrap(),
        vec![newest.clone(), anonymous.clone(), oldest]
    );
    assert_eq!(
        store.list_audit_logs(2).await.unwrap(),
        vec![newest, anonymous]
    );
}

async fn a_batch_of_audit_entries_is_written_whole_or_not_at_all(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let first = entry("login", at(0));
    store
        .insert_audit_logs(std::slice::from_ref(&first))
        .await
        .unwrap();
    let mut reused = entry("logout", at(2));
    reused.id = first.id;
    let err = store
        .insert_audit_logs(&[entry("create", at(1)), reused])
        .await
        .unwrap_err();
    assert_conflict_on(err, Constraint::Other);
    assert_eq!(store.list_audit_logs(10).await.unwrap(), vec![first]);
}
