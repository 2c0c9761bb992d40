//! The OAuth2 authorization server's data: client applications and their secrets, codes,
//! grants with their refresh tokens, the revocation feed, and signing keys.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use coderd::domain::{
    AppSecret, AuthorizationCode, ClientId, ClientType, Grant, GrantId, OAuthApp, RefreshToken,
    Role, StoredSigningKey, TokenAuthMethod, UserId,
};
use coderd::store::{Constraint, SharedStore};
use futures_util::FutureExt;
use uuid::Uuid;

use super::{assert_conflict_on, at, new_user, open, t0};
use crate::both_backends;
use crate::helpers::{Backend, TestDatabase};

both_backends!(
    apps_round_trip_and_update_only_their_mutable_fields,
    deleting_an_app_revokes_its_live_grants_and_removes_what_it_issued,
    abandoned_dynamic_apps_go_after_the_cutoff,
    app_secrets_are_found_by_prefix_listed_and_touched,
    deleting_a_secret_revokes_the_grants_issued_through_it,
    an_authorization_code_is_redeemed_once,
    expired_codes_and_refresh_tokens_are_deleted,
    grants_are_listed_newest_first_and_revoked_once,
    a_refresh_token_rotates_once,
    a_rotation_that_fails_changes_nothing,
    revocations_are_listed_since_and_forgotten_before,
    signing_keys_are_listed_retired_and_deleted,
);

fn app(name: &str, created_at: DateTime<Utc>, dynamic: bool) -> OAuthApp {
    OAuthApp {
        id: ClientId(Uuid::new_v4()),
        name: name.to_owned(),
        icon: format!("/icon/{name}.png"),
        redirect_uris: vec![format!("https://{name}.example/callback")],
        client_type: ClientType::Confidential,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        scope: "coder:workspaces.read".to_owned(),
        dynamically_registered: dynamic,
        client_uri: String::new(),
        logo_uri: String::new(),
        tos_uri: String::new(),
        policy_uri: String::new(),
        contacts: Vec::new(),
        software_id: String::new(),
        software_version: String::new(),
        registration_access_token_hash: dynamic.then(|| vec![1, 2, 3]),
        metadata_document_url: None,
        client_id_issued_at: created_at,
        last_used_at: None,
        created_at,
        updated_at: created_at,
    }
}

fn secret(app: ClientId, prefix: &str, created_at: DateTime<Utc>) -> AppSecret {
    AppSecret {
        id: Uuid::new_v4(),
        app_id: app,
        secret_prefix: prefix.to_owned(),
        hashed_secret: vec![9, 0, 255],
        display_secret: format!("{prefix}…"),
        last_used_at: None,
        created_at,
    }
}

fn code(app: ClientId, user: UserId, prefix: &str, expires_at: DateTime<Utc>) -> AuthorizationCode {
    AuthorizationCode {
        id: Uuid::new_v4(),
        secret_prefix: prefix.to_owned(),
        hashed_secret: vec![4, 5, 6],
        app_id: app,
        user_id: user,
        grant_id: GrantId(Uuid::new_v4()),
        redirect_uri: "https://app.example/callback".to_owned(),
        redirect_uri_sent: true,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        audience: "https://coder.example/api/experimental/mcp/http".to_owned(),
        scope: "coder:all".to_owned(),
        expires_at,
        used_at: None,
        created_at: t0(),
    }
}

/// The grant `code` leads to when redeemed at `now`, issued through `secret`.
fn grant_for(code: &AuthorizationCode, secret: Option<Uuid>, now: DateTime<Utc>) -> Grant {
    Grant {
        id: code.grant_id,
        app_id: code.app_id,
        user_id: code.user_id,
        app_secret_id: secret,
        scope: code.scope.clone(),
        audience: code.audience.clone(),
        last_used_at: now,
        revoked_at: None,
        created_at: now,
    }
}

fn refresh(grant: GrantId, prefix: &str, expires_at: DateTime<Utc>) -> RefreshToken {
    RefreshToken {
        id: Uuid::new_v4(),
        grant_id: grant,
        secret_prefix: prefix.to_owned(),
        hashed_secret: vec![7, 8, 9],
        expires_at,
        rotated_at: None,
        created_at: t0(),
    }
}

/// The refresh token stored under `prefix`, if any.
async fn stored_token(store: &SharedStore, prefix: &str) -> Option<RefreshToken> {
    store.get_refresh_token_by_prefix(prefix).await.unwrap()
}

/// When the grant was last used, as stored.
async fn last_used(store: &SharedStore, grant: GrantId) -> DateTime<Utc> {
    store.get_grant(grant).await.unwrap().unwrap().last_used_at
}

/// Authorizes `user` for `app` through a fresh code redeemed at `now`: the grant and its first
/// refresh token, as stored.
async fn authorize(
    store: &SharedStore,
    app: ClientId,
    user: UserId,
    secret: Option<Uuid>,
    now: DateTime<Utc>,
) -> (Grant, RefreshToken) {
    let prefix = Uuid::new_v4().simple().to_string();
    let code = code(app, user, &format!("c{prefix}"), now + Duration::minutes(1));
    store.insert_auth_code(code.clone()).await.unwrap();
    let grant = grant_for(&code, secret, now);
    let token = refresh(grant.id, &format!("r{prefix}"), now + Duration::days(30));
    assert!(
        store
            .redeem_auth_code(code.id, now, grant.clone(), token.clone())
            .await
            .unwrap()
    );
    (grant, token)
}

/// A store with the member `alice` and two clients: `(store, alice, a, b, db)`.
async fn clients(backend: &Backend) -> (SharedStore, UserId, OAuthApp, OAuthApp, TestDatabase) {
    let (store, db) = open(backend).await;
    let alice = user(&store, "alice").await;
    let (a, b) = (app("a", t0(), false), app("b", t0(), false));
    store.insert_oauth_app(a.clone()).await.unwrap();
    store.insert_oauth_app(b.clone()).await.unwrap();
    (store, alice, a, b, db)
}

async fn user(store: &SharedStore, name: &str) -> UserId {
    store
        .create_user(new_user(name, Role::Member))
        .await
        .unwrap()
        .id
}

async fn revoked_since(store: &SharedStore, since: DateTime<Utc>) -> BTreeSet<(GrantId, i64)> {
    store
        .list_revocations_since(since)
        .await
        .unwrap()
        .into_iter()
        .map(|(grant, at)| (grant, (at - t0()).num_minutes()))
        .collect()
}

async fn apps_round_trip_and_update_only_their_mutable_fields(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let later = app("later", at(1), false);
    let mut first = app("First ✓", at(0), true);
    first.contacts = vec!["ops@example.com".into(), "\"quoted\"".into()];
    first.last_used_at = Some(at(2));
    store.insert_oauth_app(later.clone()).await.unwrap();
    store.insert_oauth_app(first.clone()).await.unwrap();

    assert_eq!(
        store.get_oauth_app(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_oauth_app(later.id).await.unwrap(),
        Some(later.clone())
    );
    assert_eq!(
        store.get_oauth_app(ClientId(Uuid::new_v4())).await.unwrap(),
        None
    );
    // Listed in creation order.
    assert_eq!(
        store.list_oauth_apps().await.unwrap(),
        vec![first.clone(), later.clone()]
    );

    let changed = OAuthApp {
        name: "renamed".into(),
        icon: "/new.png".into(),
        redirect_uris: vec!["http://127.0.0.1/cb".into(), "https://a.example/cb".into()],
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretPost,
        grant_types: vec!["authorization_code".into()],
        response_types: vec!["code".into()],
        scope: "coder:all".into(),
        client_uri: "https://a.example".into(),
        logo_uri: "https://a.example/logo.png".into(),
        tos_uri: "https://a.example/tos".into(),
        policy_uri: "https://a.example/policy".into(),
        contacts: vec![],
        software_id: "a-client".into(),
        software_version: "2.0".into(),
        updated_at: at(5),
        ..first.clone()
    };
    // What an update may not change: the client's type, origin, registration token, and dates.
    let attempted = OAuthApp {
        client_type: ClientType::Public,
        dynamically_registered: false,
        registration_access_token_hash: None,
        client_id_issued_at: at(9),
        last_used_at: None,
        created_at: at(9),
        ..changed.clone()
    };
    assert!(store.update_oauth_app(attempted).await.unwrap());
    assert_eq!(store.get_oauth_app(first.id).await.unwrap(), Some(changed));
    assert!(
        !store
            .update_oauth_app(app("ghost", at(0), false))
            .await
            .unwrap()
    );

    store.touch_oauth_app(later.id, at(6)).await.unwrap();
    assert_eq!(
        store
            .get_oauth_app(later.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(at(6))
    );
    store
        .touch_oauth_app(ClientId(Uuid::new_v4()), at(6))
        .await
        .unwrap();
    assert_eq!(store.list_oauth_apps().await.unwrap().len(), 2);
}

async fn deleting_an_app_revokes_its_live_grants_and_removes_what_it_issued(backend: Backend) {
    let (store, alice, doomed, kept, _db) = clients(&backend).await;
    let s = secret(doomed.id, "sec00001", t0());
    store.insert_app_secret(s.clone()).await.unwrap();
    let (live, live_token) = authorize(&store, doomed.id, alice, Some(s.id), at(1)).await;
    let (revoked, _) = authorize(&store, doomed.id, alice, None, at(1)).await;
    assert!(store.revoke_grant(revoked.id, at(2)).await.unwrap());
    let pending = code(doomed.id, alice, "unused01", at(60));
    store.insert_auth_code(pending).await.unwrap();
    let (other, _) = authorize(&store, kept.id, alice, None, at(1)).await;

    // Only the grant that was still live is reported, and written to the feed.
    assert_eq!(
        store.delete_oauth_app(doomed.id, at(5)).await.unwrap(),
        Some(vec![live.id])
    );
    assert_eq!(
        revoked_since(&store, t0()).await,
        BTreeSet::from([(revoked.id, 2), (live.id, 5)])
    );
    assert_eq!(store.get_oauth_app(doomed.id).await.unwrap(), None);
    for grant in [live.id, revoked.id] {
        assert_eq!(store.get_grant(grant).await.unwrap(), None);
    }
    assert_eq!(
        store.get_app_secret_by_prefix("sec00001").await.unwrap(),
        None
    );
    assert_eq!(
        store.get_auth_code_by_prefix("unused01").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_refresh_token_by_prefix(&live_token.secret_prefix)
            .await
            .unwrap(),
        None
    );
    // Another app's grant is untouched.
    assert_eq!(store.get_grant(other.id).await.unwrap(), Some(other));
    assert_eq!(store.list_oauth_apps().await.unwrap(), vec![kept]);

    assert_eq!(
        store.delete_oauth_app(doomed.id, at(6)).await.unwrap(),
        None
    );
}

async fn abandoned_dynamic_apps_go_after_the_cutoff(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let abandoned = app("abandoned", at(0), true);
    let mut used = app("used", at(0), true);
    used.last_used_at = Some(at(1));
    let fresh = app("fresh", at(10), true);
    let registered_by_hand = app("static", at(1), false);
    for a in [&abandoned, &used, &fresh, &registered_by_hand] {
        store.insert_oauth_app(a.clone()).await.unwrap();
    }
    // Created exactly at the cutoff is not before it.
    assert_eq!(
        store.delete_abandoned_dynamic_apps(at(10)).await.unwrap(),
        1
    );
    let left: Vec<String> = store
        .list_oauth_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(left, ["used", "static", "fresh"]);
    assert_eq!(
        store.delete_abandoned_dynamic_apps(at(10)).await.unwrap(),
        0
    );
}

async fn app_secrets_are_found_by_prefix_listed_and_touched(backend: Backend) {
    let (store, _, a, b, _db) = clients(&backend).await;
    let newer = secret(a.id, "prefix02", at(1));
    let older = secret(a.id, "prefix01", at(0));
    let other = secret(b.id, "prefix03", at(0));
    for s in [&newer, &older, &other] {
        store.insert_app_secret(s.clone()).await.unwrap();
    }

    assert_eq!(
        store.get_app_secret_by_prefix("prefix02").await.unwrap(),
        Some(newer.clone())
    );
    assert_eq!(
        store.get_app_secret_by_prefix("prefix0").await.unwrap(),
        None
    );
    assert_eq!(
        store.list_app_secrets(a.id).await.unwrap(),
        vec![older.clone(), newer.clone()]
    );
    assert_eq!(store.list_app_secrets(b.id).await.unwrap(), vec![other]);
    assert!(
        store
            .list_app_secrets(ClientId(Uuid::new_v4()))
            .await
            .unwrap()
            .is_empty()
    );

    store.touch_app_secret(older.id, at(3)).await.unwrap();
    assert_eq!(
        store.list_app_secrets(a.id).await.unwrap(),
        vec![
            AppSecret {
                last_used_at: Some(at(3)),
                ..older
            },
            newer
        ]
    );
    // A prefix is the lookup key, so it is unique across apps.
    assert_conflict_on(
        store
            .insert_app_secret(secret(b.id, "prefix01", at(4)))
            .await
            .unwrap_err(),
        Constraint::Other,
    );
}

async fn deleting_a_secret_revokes_the_grants_issued_through_it(backend: Backend) {
    let (store, alice, a, b, _db) = clients(&backend).await;
    let leaked = secret(a.id, "leaked01", t0());
    let kept = secret(a.id, "kept0001", t0());
    store.insert_app_secret(leaked.clone()).await.unwrap();
    store.insert_app_secret(kept.clone()).await.unwrap();
    let (through_leaked, _) = authorize(&store, a.id, alice, Some(leaked.id), at(1)).await;
    let (through_kept, _) = authorize(&store, a.id, alice, Some(kept.id), at(1)).await;
    let (without_secret, _) = authorize(&store, a.id, alice, None, at(1)).await;

    // The secret belongs to another app: nothing happens.
    assert_eq!(
        store
            .delete_app_secret(b.id, leaked.id, at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.list_app_secrets(a.id).await.unwrap().len(), 2);

    assert_eq!(
        store
            .delete_app_secret(a.id, leaked.id, at(3))
            .await
            .unwrap(),
        Some(vec![through_leaked.id])
    );
    assert_eq!(store.list_app_secrets(a.id).await.unwrap(), vec![kept]);
    let revoked = store.get_grant(through_leaked.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(3)));
    assert_eq!(revoked.app_secret_id, None, "the secret is gone");
    assert_eq!(
        revoked_since(&store, t0()).await,
        BTreeSet::from([(through_leaked.id, 3)])
    );
    for live in [through_kept, without_secret] {
        assert_eq!(store.get_grant(live.id).await.unwrap(), Some(live));
    }
    assert_eq!(
        store
            .delete_app_secret(a.id, leaked.id, at(4))
            .await
            .unwrap(),
        None
    );
}

async fn an_authorization_code_is_redeemed_once(backend: Backend) {
    let (store, alice, a, _, _db) = clients(&backend).await;
    let issued = code(a.id, alice, "code0001", at(10));
    store.insert_auth_code(issued.clone()).await.unwrap();
    assert_eq!(
        store.get_auth_code_by_prefix("code0001").await.unwrap(),
        Some(issued.clone())
    );
    assert_eq!(
        store.get_auth_code_by_prefix("code0002").await.unwrap(),
        None
    );

    // Of concurrent exchanges, exactly one consumes the code and writes its grant.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        let mut grant = grant_for(&issued, None, at(1));
        grant.id = GrantId(Uuid::new_v4());
        let token = refresh(grant.id, &format!("refresh{i}"), at(100));
        tasks.spawn(async move {
            let redeemed = store
                .redeem_auth_code(issued.id, at(1), grant.clone(), token.clone())
                .await
                .unwrap();
            (redeemed, grant, token)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (redeemed, grant, token) = result.unwrap();
        let stored = store.get_grant(grant.id).await.unwrap();
        let stored_token = store
            .get_refresh_token_by_prefix(&token.secret_prefix)
            .await
            .unwrap();
        if redeemed {
            assert_eq!(stored, Some(grant.clone()));
            assert_eq!(stored_token, Some(token));
            winners.push(grant.id);
        } else {
            assert_eq!(
                (stored, stored_token),
                (None, None),
                "a loser writes nothing"
            );
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.list_user_grants(alice).await.unwrap().len(), 1);
    assert_eq!(
        store.get_auth_code_by_prefix("code0001").await.unwrap(),
        Some(AuthorizationCode {
            used_at: Some(at(1)),
            ..issued
        })
    );
}

async fn expired_codes_and_refresh_tokens_are_deleted(backend: Backend) {
    let (store, alice, a, _, _db) = clients(&backend).await;
    let now = at(60);
    let tick = Duration::microseconds(1);
    let (grant, first_token) = authorize(&store, a.id, alice, None, t0()).await;
    let mut old = first_token.id;
    for (n, expires_at) in [now - tick, now, now + tick].into_iter().enumerate() {
        let prefix = format!("code000{n}");
        store
            .insert_auth_code(code(a.id, alice, &prefix, expires_at))
            .await
            .unwrap();
        let token = refresh(grant.id, &format!("refresh{n}"), expires_at);
        assert!(
            store
                .rotate_refresh_token(old, t0(), token.clone())
                .await
                .unwrap()
        );
        old = token.id;
    }
    // `authorize`'s own code expired a minute after t0, and its first token lives 30 days.
    assert_eq!(store.delete_expired_auth_codes(now).await.unwrap(), 3);
    assert_eq!(store.delete_expired_refresh_tokens(now).await.unwrap(), 2);
    assert!(
        store
            .get_auth_code_by_prefix("code0001")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_auth_code_by_prefix("code0002")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_refresh_token_by_prefix("refresh1")
            .await
            .unwrap()
            .is_none()
    );
    for kept in [&first_token.secret_prefix, "refresh2"] {
        assert!(
            store
                .get_refresh_token_by_prefix(kept)
                .await
                .unwrap()
                .is_some(),
            "{kept}"
        );
    }
    assert_eq!(store.delete_expired_auth_codes(now).await.unwrap(), 0);
    assert_eq!(store.delete_expired_refresh_tokens(now).await.unwrap(), 0);
}

async fn grants_are_listed_newest_first_and_revoked_once(backend: Backend) {
    let (store, alice, a, b, _db) = clients(&backend).await;
    let bob = user(&store, "bob").await;
    let (a1, _) = authorize(&store, a.id, alice, None, at(1)).await;
    let (a2, _) = authorize(&store, a.id, alice, None, at(2)).await;
    let (b3, _) = authorize(&store, b.id, alice, None, at(3)).await;
    let (bobs, _) = authorize(&store, a.id, bob, None, at(4)).await;
    let ids = |grants: Vec<Grant>| grants.into_iter().map(|g| g.id).collect::<Vec<_>>();

    assert_eq!(store.get_grant(a1.id).await.unwrap(), Some(a1.clone()));
    assert_eq!(
        store.get_grant(GrantId(Uuid::new_v4())).await.unwrap(),
        None
    );
    assert_eq!(
        ids(store.list_user_grants(alice).await.unwrap()),
        [b3.id, a2.id, a1.id]
    );

    assert!(store.revoke_grant(a2.id, at(5)).await.unwrap());
    assert!(!store.revoke_grant(a2.id, at(6)).await.unwrap(), "once");
    assert!(
        !store
            .revoke_grant(GrantId(Uuid::new_v4()), at(6))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_grant(a2.id).await.unwrap().unwrap().revoked_at,
        Some(at(5))
    );
    assert_eq!(
        ids(store.list_user_grants(alice).await.unwrap()),
        [b3.id, a1.id]
    );

    // One client's live grants, then all the rest; another user's stay.
    assert_eq!(
        store
            .revoke_user_grants(alice, Some(a.id), at(7))
            .await
            .unwrap(),
        vec![a1.id]
    );
    assert_eq!(
        store.revoke_user_grants(alice, None, at(8)).await.unwrap(),
        vec![b3.id]
    );
    assert!(
        store
            .revoke_user_grants(alice, None, at(9))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_user_grants(alice).await.unwrap().is_empty());
    assert_eq!(ids(store.list_user_grants(bob).await.unwrap()), [bobs.id]);
    assert_eq!(
        revoked_since(&store, t0()).await,
        BTreeSet::from([(a2.id, 5), (a1.id, 7), (b3.id, 8)])
    );
}

async fn a_refresh_token_rotates_once(backend: Backend) {
    let (store, alice, a, _, _db) = clients(&backend).await;
    let (grant, first) = authorize(&store, a.id, alice, None, at(1)).await;
    assert_eq!(
        stored_token(&store, &first.secret_prefix).await,
        Some(first.clone())
    );

    let second = refresh(grant.id, "second01", at(100));
    assert!(
        store
            .rotate_refresh_token(first.id, at(5), second.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        stored_token(&store, &first.secret_prefix).await,
        Some(RefreshToken {
            rotated_at: Some(at(5)),
            ..first.clone()
        })
    );
    assert_eq!(stored_token(&store, "second01").await, Some(second));
    assert_eq!(
        last_used(&store, grant.id).await,
        at(5),
        "a rotation uses the grant"
    );

    // A rotated token cannot rotate again, and the attempt writes nothing.
    let replay = refresh(grant.id, "replay01", at(100));
    assert!(
        !store
            .rotate_refresh_token(first.id, at(6), replay)
            .await
            .unwrap()
    );
    assert_eq!(stored_token(&store, "replay01").await, None);
    assert_eq!(last_used(&store, grant.id).await, at(5));
}

/// A rotation whose new token cannot be stored (its id is taken) fails whole: the old token is
/// not marked rotated and the grant not touched. On SQLite the failed batch's transaction is
/// rolled back rather than left open on a pooled connection, where it would hold the write lock
/// and the next rotation would wait out the busy timeout and fail.
async fn a_rotation_that_fails_changes_nothing(backend: Backend) {
    let (store, alice, a, _, _db) = clients(&backend).await;
    let (grant, first) = authorize(&store, a.id, alice, None, at(1)).await;
    let used = last_used(&store, grant.id).await;
    let clash = RefreshToken {
        id: first.id,
        ..refresh(grant.id, "clash001", at(100))
    };
    for _ in 0..3 {
        assert!(
            store
                .rotate_refresh_token(first.id, at(5), clash.clone())
                .await
                .is_err()
        );
    }
    assert_eq!(
        stored_token(&store, &first.secret_prefix).await,
        Some(first.clone())
    );
    assert_eq!(stored_token(&store, "clash001").await, None);
    assert_eq!(last_used(&store, grant.id).await, used);

    let second = refresh(grant.id, "second01", at(100));
    assert!(
        store
            .rotate_refresh_token(first.id, at(6), second.clone())
            .await
            .unwrap()
    );
    assert_eq!(stored_token(&store, "second01").await, Some(second));
}

/// A SQLite rotation whose caller stops waiting after it started (a client gone mid-request)
/// still happens whole, and the store writes again at once: the batch runs in a task of its
/// own, so it cannot stop after `BEGIN` and leave the write lock taken on a pooled connection.
/// (On PostgreSQL the rotation is one statement, whole or nothing by itself.)
#[test]
fn an_abandoned_sqlite_rotation_still_happens_whole() {
    crate::helpers::run_test(async {
        let (store, alice, a, _, _db) = clients(&Backend::Sqlite).await;
        let (grant, first) = authorize(&store, a.id, alice, None, at(1)).await;
        let second = refresh(grant.id, "second01", at(100));
        // Polled once, then dropped, as a request future is when its client goes away. The
        // first poll only hands the batch to a task of its own, which this one-thread test
        // runtime has not started yet; run in the caller, the write would race the drop.
        let abandoned = store
            .rotate_refresh_token(first.id, at(5), second.clone())
            .now_or_never();
        assert!(
            abandoned.is_none(),
            "the rotation finished in one poll: {abandoned:?}"
        );

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stored_token(&store, "second01").await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the abandoned rotation never finished"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            stored_token(&store, &first.secret_prefix).await,
            Some(RefreshToken {
                rotated_at: Some(at(5)),
                ..first
            })
        );
        let third = refresh(grant.id, "third001", at(100));
        assert!(
            store
                .rotate_refresh_token(second.id, at(6), third)
                .await
                .unwrap()
        );
    });
}

async fn revocations_are_listed_since_and_forgotten_before(backend: Backend) {
    let (store, alice, a, _, _db) = clients(&backend).await;
    let mut grants = Vec::new();
    for minute in 1..=3 {
        let (grant, _) = authorize(&store, a.id, alice, None, t0()).await;
        assert!(store.revoke_grant(grant.id, at(minute)).await.unwrap());
        grants.push(grant.id);
    }
    assert!(revoked_since(&store, at(4)).await.is_empty());
    assert_eq!(
        revoked_since(&store, at(2)).await,
        BTreeSet::from([(grants[1], 2), (grants[2], 3)]),
        "since is inclusive"
    );
    assert_eq!(store.delete_revocations_before(at(2)).await.unwrap(), 1);
    assert_eq!(
        revoked_since(&store, t0()).await,
        BTreeSet::from([(grants[1], 2), (grants[2], 3)])
    );
    assert_eq!(store.delete_revocations_before(at(2)).await.unwrap(), 0);
}

async fn signing_keys_are_listed_retired_and_deleted(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let key = |kid: &str, created_at, retired_at| StoredSigningKey {
        kid: kid.to_owned(),
        algorithm: "EdDSA".to_owned(),
        private_key: format!("private-{kid}"),
        public_key: format!("public-{kid}"),
        retired_at,
        created_at,
    };
    let oldest = key("k1", at(0), None);
    let retired_early = key("k2", at(1), Some(at(2)));
    let current = key("k3", at(3), None);
    for k in [&current, &oldest, &retired_early] {
        store.insert_signing_key(k.clone()).await.unwrap();
    }
    assert_eq!(
        store.list_signing_keys().await.unwrap(),
        vec![oldest.clone(), retired_early.clone(), current.clone()]
    );
    assert_conflict_on(
        store
            .insert_signing_key(key("k1", at(4), None))
            .await
            .unwrap_err(),
        Constraint::Other,
    );

    // Keys retired earlier keep their date.
    store.retire_signing_keys_except("k3", at(5)).await.unwrap();
    let oldest = StoredSigningKey {
        retired_at: Some(at(5)),
        ..oldest
    };
    assert_eq!(
        store.list_signing_keys().await.unwrap(),
        vec![oldest.clone(), retired_early, current.clone()]
    );

    assert_eq!(
        store
            .delete_signing_keys_retired_before(at(5))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.list_signing_keys().await.unwrap(),
        vec![oldest, current.clone()]
    );
    // The active key is never retired, so never deleted.
    assert_eq!(
        store
            .delete_signing_keys_retired_before(at(60))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![current]);
}
