//! Users and their API keys.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use coderd::domain::Page;
use coderd::domain::{ApiKey, ApiKeyId, LoginType, Role, User, UserId, UserStatus};
use coderd::store::{Constraint, StoreError};

use super::{assert_conflict_on, new_user, open, t0};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    first_user_is_created_once,
    first_user_is_refused_when_any_user_exists,
    concurrent_first_users_create_exactly_one,
    create_user_conflicts_case_insensitively,
    users_are_found_by_id_username_and_email,
    list_users_pages_and_counts,
    delete_user_hides_the_user_and_removes_its_keys,
    touch_user_last_seen_updates_only_that_user,
    status_and_role_change_only_that_live_user,
    api_keys_round_trip_and_list_by_login_type,
    api_key_uniqueness,
    delete_and_touch_api_keys,
    delete_expired_api_keys_removes_only_expired,
    timestamps_round_trip_at_microsecond_precision,
    lookups_by_keys_with_nul_find_nothing,
);

fn api_key(
    id: &str,
    user: UserId,
    login_type: LoginType,
    name: &str,
    created_at: DateTime<Utc>,
) -> ApiKey {
    ApiKey {
        id: ApiKeyId(id.to_owned()),
        user_id: user,
        hashed_secret: vec![0, 1, 2, 254, 255, id.len() as u8],
        login_type,
        token_name: name.to_owned(),
        lifetime_seconds: 3600,
        expires_at: created_at + Duration::hours(1),
        last_used: created_at,
        created_at,
        updated_at: created_at,
    }
}

async fn first_user_is_created_once(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let input = new_user("Owner", Role::Owner);
    let owner = store.create_first_user(input.clone()).await.unwrap();
    assert_eq!(
        owner,
        User {
            id: input.id,
            username: "Owner".into(),
            email: "Owner@example.com".into(),
            name: "Owner name".into(),
            role: Role::Owner,
            status: UserStatus::Active,
            created_at: t0(),
            updated_at: t0(),
            last_seen_at: t0(),
        }
    );
    assert_eq!(store.count_users().await.unwrap(), 1);

    let err = store
        .create_first_user(new_user("second", Role::Owner))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FirstUserExists), "{err:?}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(
        store
            .get_user_by_username("second")
            .await
            .unwrap()
            .is_none()
    );
}

async fn first_user_is_refused_when_any_user_exists(backend: Backend) {
    let (store, _db) = open(&backend).await;
    store
        .create_user(new_user("member", Role::Member))
        .await
        .unwrap();
    let err = store
        .create_first_user(new_user("late", Role::Owner))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FirstUserExists), "{err:?}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.get_user_by_username("late").await.unwrap().is_none());
}

async fn concurrent_first_users_create_exactly_one(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .create_first_user(new_user(&format!("racer{i}"), Role::Owner))
                .await
        });
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::FirstUserExists) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((created, refused), (1, 7));
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn create_user_conflicts_case_insensitively(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let alice = store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap();
    assert_eq!(alice.role, Role::Member);

    let mut same_name = new_user("ALICE", Role::Member);
    same_name.email = "other@example.com".into();
    assert_conflict_on(
        store.create_user(same_name).await.unwrap_err(),
        Constraint::UserUsername,
    );

    let mut same_email = new_user("alice2", Role::Member);
    same_email.email = "Alice@Example.COM".into();
    assert_conflict_on(
        store.create_user(same_email).await.unwrap_err(),
        Constraint::UserEmail,
    );

    // A reused id is a conflict too, never an overwrite.
    let mut same_id = new_user("carol", Role::Member);
    same_id.id = alice.id;
    assert!(matches!(
        store.create_user(same_id).await.unwrap_err(),
        StoreError::Conflict(Constraint::Other)
    ));

    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(
        store
            .get_user_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .username,
        "alice"
    );
}

async fn users_are_found_by_id_username_and_email(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let owner = store
        .create_first_user(new_user("owner", Role::Owner))
        .await
        .unwrap();
    let jane = store
        .create_user(new_user("Jane-Doe", Role::Member))
        .await
        .unwrap();

    assert_eq!(
        store.get_user_by_id(jane.id).await.unwrap(),
        Some(jane.clone())
    );
    assert_eq!(
        store.get_user_by_id(owner.id).await.unwrap(),
        Some(owner.clone())
    );
    assert_eq!(store.get_user_by_id(UserId::new()).await.unwrap(), None);

    for name in ["Jane-Doe", "jane-doe", "JANE-DOE"] {
        assert_eq!(
            store.get_user_by_username(name).await.unwrap(),
            Some(jane.clone()),
            "{name}"
        );
    }
    assert_eq!(store.get_user_by_username("jane").await.unwrap(), None);
    assert_eq!(store.get_user_by_username("").await.unwrap(), None);
    // Pattern characters are not wildcards.
    assert_eq!(store.get_user_by_username("jane%").await.unwrap(), None);

    for email in ["Jane-Doe@example.com", "jane-doe@EXAMPLE.com"] {
        let creds = store
            .get_user_credentials_by_email(email)
            .await
            .unwrap()
            .expect(email);
        assert_eq!(creds.user, jane);
        assert_eq!(creds.hashed_password, "$argon2id$hash-of-Jane-Doe");
    }
    assert!(
        store
            .get_user_credentials_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_user_credentials_by_email("%@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn list_users_pages_and_counts(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let (empty, total) = store
        .list_users(Page {
            limit: 10,
            offset: 0,
        })
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(total, 0);

    for name in ["delta", "Bravo", "echo", "alpha", "Charlie"] {
        store
            .create_user(new_user(name, Role::Member))
            .await
            .unwrap();
    }
    let names = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    let page = |limit, offset| store.list_users(Page { limit, offset });

    let (all, total) = page(100, 0).await.unwrap();
    assert_eq!(names(all), ["alpha", "Bravo", "Charlie", "delta", "echo"]);
    assert_eq!(total, 5);
    let (first, total) = page(2, 0).await.unwrap();
    assert_eq!(
        (names(first), total),
        (vec!["alpha".to_owned(), "Bravo".to_owned()], 5)
    );
    let (second, _) = page(2, 2).await.unwrap();
    assert_eq!(names(second), ["Charlie", "delta"]);
    let (last, _) = page(2, 4).await.unwrap();
    assert_eq!(names(last), ["echo"]);
    let (beyond, total) = page(2, 10).await.unwrap();
    assert!(beyond.is_empty());
    assert_eq!(total, 5);
    assert_eq!(store.count_users().await.unwrap(), 5);
}

async fn delete_user_hides_the_user_and_removes_its_keys(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let owner = store
        .create_first_user(new_user("owner", Role::Owner))
        .await
        .unwrap();
    let alice = store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "alicesess1",
            alice.id,
            LoginType::Password,
            "",
            t0(),
        ))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "alicetoken",
            alice.id,
            LoginType::Token,
            "ci",
            t0(),
        ))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "ownertoken",
            owner.id,
            LoginType::Token,
            "ci",
            t0(),
        ))
        .await
        .unwrap();

    let later = t0() + Duration::hours(1);
    assert!(store.delete_user(alice.id, later).await.unwrap());
    assert_eq!(store.get_user_by_id(alice.id).await.unwrap(), None);
    assert_eq!(store.get_user_by_username("alice").await.unwrap(), None);
    assert!(
        store
            .get_user_credentials_by_email("alice@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
    let (users, total) = store
        .list_users(Page {
            limit: 10,
            offset: 0,
        })
        .await
        .unwrap();
    assert_eq!((users.len(), total), (1, 1));
    assert_eq!(users[0].id, owner.id);
    for id in ["alicesess1", "alicetoken"] {
        assert_eq!(
            store.get_api_key(&ApiKeyId(id.into())).await.unwrap(),
            None,
            "{id}"
        );
    }
    assert!(
        store
            .list_api_keys(alice.id, LoginType::Token)
            .await
            .unwrap()
            .is_empty()
    );
    // Other users' keys are untouched.
    assert!(
        store
            .get_api_key(&ApiKeyId("ownertoken".into()))
            .await
            .unwrap()
            .is_some()
    );

    // Deleting twice, or someone unknown, reports nothing deleted.
    assert!(!store.delete_user(alice.id, later).await.unwrap());
    assert!(!store.delete_user(UserId::new(), later).await.unwrap());

    // The username and email can be taken again, by a new account.
    let again = store
        .create_user(new_user("ALICE", Role::Member))
        .await
        .unwrap();
    assert_ne!(again.id, alice.id);
    assert_eq!(
        store
            .get_user_by_username("alice")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(again.id)
    );
    // A deleted account's id stays taken.
    let mut reuse = new_user("alice-old", Role::Member);
    reuse.id = alice.id;
    assert!(store.create_user(reuse).await.is_err());
}

async fn touch_user_last_seen_updates_only_that_user(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let a = store
        .create_user(new_user("a", Role::Member))
        .await
        .unwrap();
    let b = store
        .create_user(new_user("b", Role::Member))
        .await
        .unwrap();
    let seen = t0() + Duration::minutes(5) + Duration::microseconds(7);
    store.touch_user_last_seen(a.id, seen).await.unwrap();
    let a2 = store.get_user_by_id(a.id).await.unwrap().unwrap();
    assert_eq!(a2.last_seen_at, seen);
    assert_eq!((a2.created_at, a2.updated_at), (t0(), t0()));
    assert_eq!(
        store
            .get_user_by_id(b.id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        t0()
    );
    // Touching an unknown user is not an error.
    store
        .touch_user_last_seen(UserId::new(), seen)
        .await
        .unwrap();
}

async fn status_and_role_change_only_that_live_user(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let a = store
        .create_user(new_user("a", Role::Member))
        .await
        .unwrap();
    let b = store
        .create_user(new_user("b", Role::Member))
        .await
        .unwrap();
    let later = t0() + Duration::minutes(3);
    assert!(
        store
            .set_user_status(a.id, UserStatus::Suspended, later)
            .await
            .unwrap()
    );
    assert!(store.set_user_role(a.id, Role::Owner, later).await.unwrap());
    let a2 = store.get_user_by_id(a.id).await.unwrap().unwrap();
    assert_eq!(
        (a2.status, a2.role, a2.updated_at, a2.created_at),
        (UserStatus::Suspended, Role::Owner, later, t0())
    );
    // Sign-in reads the same row.
    let creds = store
        .get_user_credentials_by_email("a@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user.status, UserStatus::Suspended);
    assert_eq!(store.get_user_by_id(b.id).await.unwrap().unwrap(), b);
    assert!(
        store
            .set_user_status(a.id, UserStatus::Active, later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_user_by_id(a.id).await.unwrap().unwrap().status,
        UserStatus::Active
    );

    // Unknown and deleted users change nothing.
    assert!(
        !store
            .set_user_status(UserId::new(), UserStatus::Suspended, later)
            .await
            .unwrap()
    );
    assert!(store.delete_user(b.id, later).await.unwrap());
    assert!(
        !store
            .set_user_status(b.id, UserStatus::Suspended, later)
            .await
            .unwrap()
    );
    assert!(!store.set_user_role(b.id, Role::Owner, later).await.unwrap());
}

async fn api_keys_round_trip_and_list_by_login_type(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let user = store
        .create_user(new_user("keyholder", Role::Member))
        .await
        .unwrap();
    let other = store
        .create_user(new_user("other", Role::Member))
        .await
        .unwrap();

    let mut token = api_key("tokenaaaa1", user.id, LoginType::Token, "deploy", t0());
    token.lifetime_seconds = 8760 * 3600;
    token.expires_at = t0() + Duration::hours(8760);
    token.hashed_secret = (0..=255u8).collect::<Vec<_>>();
    store.insert_api_key(token.clone()).await.unwrap();
    assert_eq!(
        store.get_api_key(&token.id).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        store
            .get_api_key(&ApiKeyId("missing000".into()))
            .await
            .unwrap(),
        None
    );

    // Listed in creation order, one login type at a time, for one user only.
    let later = api_key(
        "tokenbbbb2",
        user.id,
        LoginType::Token,
        "backup",
        t0() + Duration::seconds(1),
    );
    let session = api_key("session001", user.id, LoginType::Password, "", t0());
    let others = api_key("othertoken", other.id, LoginType::Token, "deploy", t0());
    for key in [&later, &session, &others] {
        store.insert_api_key(key.clone()).await.unwrap();
    }
    assert_eq!(
        store
            .list_api_keys(user.id, LoginType::Token)
            .await
            .unwrap(),
        vec![token, later]
    );
    assert_eq!(
        store
            .list_api_keys(user.id, LoginType::Password)
            .await
            .unwrap(),
        vec![session]
    );
    assert_eq!(
        store
            .list_api_keys(other.id, LoginType::Token)
            .await
            .unwrap(),
        vec![others]
    );
    assert!(
        store
            .list_api_keys(UserId::new(), LoginType::Token)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn api_key_uniqueness(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let user = store
        .create_user(new_user("keyholder", Role::Member))
        .await
        .unwrap();
    let other = store
        .create_user(new_user("other", Role::Member))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "token00001",
            user.id,
            LoginType::Token,
            "deploy",
            t0(),
        ))
        .await
        .unwrap();

    let dup_name = api_key("token00002", user.id, LoginType::Token, "deploy", t0());
    assert_conflict_on(
        store.insert_api_key(dup_name).await.unwrap_err(),
        Constraint::ApiKeyTokenName,
    );
    let dup_id = api_key("token00001", other.id, LoginType::Token, "fresh", t0());
    assert!(matches!(
        store.insert_api_key(dup_id).await.unwrap_err(),
        StoreError::Conflict(Constraint::Other)
    ));
    // Another user may reuse the name, and browser sessions (no name) never collide.
    store
        .insert_api_key(api_key(
            "token00003",
            other.id,
            LoginType::Token,
            "deploy",
            t0(),
        ))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "session001",
            user.id,
            LoginType::Password,
            "",
            t0(),
        ))
        .await
        .unwrap();
    store
        .insert_api_key(api_key(
            "session002",
            user.id,
            LoginType::Password,
            "",
            t0(),
        ))
        .await
        .unwrap();
    // A key must belong to an existing user; that is not a uniqueness conflict.
    let orphan = api_key("orphan0001", UserId::new(), LoginType::Token, "x", t0());
    let err = store.insert_api_key(orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");

    assert_eq!(
        store
            .list_api_keys(user.id, LoginType::Token)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_api_keys(user.id, LoginType::Password)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .list_api_keys(other.id, LoginType::Token)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn delete_and_touch_api_keys(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let user = store
        .create_user(new_user("keyholder", Role::Member))
        .await
        .unwrap();
    let other = store
        .create_user(new_user("other", Role::Member))
        .await
        .unwrap();
    let key = api_key("token00001", user.id, LoginType::Token, "deploy", t0());
    let kept = api_key("token00002", user.id, LoginType::Token, "kept", t0());
    store.insert_api_key(key.clone()).await.unwrap();
    store.insert_api_key(kept.clone()).await.unwrap();

    let used = t0() + Duration::minutes(3) + Duration::microseconds(42);
    store.touch_api_key(&key.id, used).await.unwrap();
    let touched = store.get_api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(
        touched,
        ApiKey {
            last_used: used,
            ..key.clone()
        }
    );
    assert_eq!(
        store.get_api_key(&kept.id).await.unwrap(),
        Some(kept.clone())
    );
    store
        .touch_api_key(&ApiKeyId("missing000".into()), used)
        .await
        .unwrap();

    // Only the owning user's delete takes effect.
    assert!(!store.delete_api_key(other.id, &key.id).await.unwrap());
    assert!(store.get_api_key(&key.id).await.unwrap().is_some());
    assert!(store.delete_api_key(user.id, &key.id).await.unwrap());
    assert_eq!(store.get_api_key(&key.id).await.unwrap(), None);
    assert!(!store.delete_api_key(user.id, &key.id).await.unwrap());
    assert_eq!(
        store
            .list_api_keys(user.id, LoginType::Token)
            .await
            .unwrap(),
        vec![kept]
    );

    // The freed name can be used again.
    store
        .insert_api_key(api_key(
            "token00003",
            user.id,
            LoginType::Token,
            "deploy",
            t0(),
        ))
        .await
        .unwrap();
}

async fn delete_expired_api_keys_removes_only_expired(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let user = store
        .create_user(new_user("keyholder", Role::Member))
        .await
        .unwrap();
    let now = t0() + Duration::days(1);
    let mut ids = Vec::new();
    for (id, expires_at) in [
        ("expired001", now - Duration::hours(1)),
        ("expired002", now - Duration::microseconds(1)),
        ("expiresnow", now),
        ("valid00001", now + Duration::microseconds(1)),
        ("valid00002", now + Duration::days(30)),
    ] {
        let mut key = api_key(id, user.id, LoginType::Token, id, t0());
        key.expires_at = expires_at;
        store.insert_api_key(key).await.unwrap();
        ids.push(id);
    }
    assert_eq!(store.delete_expired_api_keys(now).await.unwrap(), 3);
    let left: Vec<String> = store
        .list_api_keys(user.id, LoginType::Token)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id.0)
        .collect();
    assert_eq!(left, ["valid00001", "valid00002"]);
    assert_eq!(store.delete_expired_api_keys(now).await.unwrap(), 0);
    assert_eq!(
        store
            .delete_expired_api_keys(now + Duration::days(365))
            .await
            .unwrap(),
        2
    );
    for id in ids {
        assert_eq!(
            store.get_api_key(&ApiKeyId(id.into())).await.unwrap(),
            None,
            "{id}"
        );
    }
}

async fn timestamps_round_trip_at_microsecond_precision(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let micros = Utc
        .with_ymd_and_hms(2026, 7, 4, 23, 59, 59)
        .single()
        .unwrap()
        + Duration::microseconds(123_456);
    let mut input = new_user("timely", Role::Member);
    input.created_at = micros;
    let user = store.create_user(input).await.unwrap();
    assert_eq!(user.created_at, micros);
    assert_eq!(
        store
            .get_user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .created_at,
        micros
    );

    // Below a microsecond, both backends drop the same digits.
    let nanos = micros + Duration::nanoseconds(789);
    let truncated = nanos.duration_trunc(Duration::microseconds(1)).unwrap();
    assert_eq!(truncated, micros);
    let mut key = api_key("timekey001", user.id, LoginType::Token, "t", nanos);
    key.expires_at =
        Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).single().unwrap() + Duration::microseconds(1);
    store.insert_api_key(key.clone()).await.unwrap();
    let stored = store.get_api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(stored.created_at, truncated);
    assert_eq!(stored.last_used, truncated);
    assert_eq!(stored.expires_at, key.expires_at);

    // Before the Unix epoch too.
    let old = Utc
        .with_ymd_and_hms(1969, 12, 31, 23, 59, 59)
        .single()
        .unwrap()
        + Duration::microseconds(999_999);
    store.touch_user_last_seen(user.id, old).await.unwrap();
    assert_eq!(
        store
            .get_user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        old
    );
}

/// PostgreSQL text cannot hold NUL; a lookup by such a key finds nothing instead of failing.
async fn lookups_by_keys_with_nul_find_nothing(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let user = store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap();
    let key = api_key("token00001", user.id, LoginType::Token, "ci", t0());
    store.insert_api_key(key.clone()).await.unwrap();
    let nul_key = ApiKeyId("token\u{0}0001".into());

    assert_eq!(
        store.get_user_by_username("alice\u{0}").await.unwrap(),
        None
    );
    assert!(
        store
            .get_user_credentials_by_email("alice@example.com\u{0}")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.get_api_key(&nul_key).await.unwrap(), None);
    assert!(!store.delete_api_key(user.id, &nul_key).await.unwrap());
    store
        .touch_api_key(&nul_key, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(store.get_site_config("key\u{0}").await.unwrap(), None);
    // Nothing real was touched.
    assert_eq!(store.get_api_key(&key.id).await.unwrap(), Some(key));
}
