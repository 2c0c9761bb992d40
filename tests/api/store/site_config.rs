//! Deployment-wide settings.

use chrono::Duration;

use super::{open, t0};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(site_config_get_and_upsert);

async fn site_config_get_and_upsert(backend: Backend) {
    let (store, _db) = open(&backend).await;
    assert_eq!(store.get_site_config("theme").await.unwrap(), None);
    store
        .upsert_site_config("theme", "dark", t0())
        .await
        .unwrap();
    assert_eq!(
        store.get_site_config("theme").await.unwrap().as_deref(),
        Some("dark")
    );
    store
        .upsert_site_config("theme", "light ✓ 'quoted'", t0() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        store.get_site_config("theme").await.unwrap().as_deref(),
        Some("light ✓ 'quoted'")
    );
    store.upsert_site_config("empty", "", t0()).await.unwrap();
    assert_eq!(
        store.get_site_config("empty").await.unwrap().as_deref(),
        Some("")
    );
    // Keys are exact.
    assert_eq!(store.get_site_config("THEME").await.unwrap(), None);
    assert_eq!(
        store.get_site_config("theme").await.unwrap().as_deref(),
        Some("light ✓ 'quoted'")
    );
}
