//! The store contract: every `Store` method, called directly, with the same expectations on
//! SQLite and PostgreSQL. One module per aggregate, as in `src/store/`; this one holds the
//! fixtures they share.

mod audit;
mod oauth;
mod site_config;
mod users;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coderd::domain::{NewUser, Role, UserId};
use coderd::store::{Constraint, SharedStore, StoreError};

use crate::both_backends;
use crate::helpers::{Backend, TestDatabase};

both_backends!(reports_backend_pings_and_closes);

pub async fn open(backend: &Backend) -> (SharedStore, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let store = coderd::store::open(&db.target).await.expect("store opens");
    (store, db)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).single().unwrap()
}

/// `minutes` after `t0`, for events that happen in order.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

pub fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        name: format!("{username} name"),
        hashed_password: format!("$argon2id$hash-of-{username}"),
        role,
        created_at: t0(),
    }
}

pub fn assert_conflict_on(err: StoreError, expected: Constraint) {
    match err {
        StoreError::Conflict(constraint) => assert_eq!(constraint, expected),
        other => panic!("expected a conflict on {expected}, got {other:?}"),
    }
}

async fn reports_backend_pings_and_closes(backend: Backend) {
    let (store, db) = open(&backend).await;
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    assert_eq!(store.backend(), expected);
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store cannot be used");

    // Opening the same database again finds the migrated schema in place.
    let again = coderd::store::open(&db.target).await.expect("reopen");
    again.ping().await.unwrap();
    again.close().await;
}
