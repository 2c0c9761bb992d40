//! The set of revoked grants, kept in memory on every replica so that access tokens verify
//! without a database round trip. The instance that revokes adds to it at once; the others
//! follow the database's revocation feed (`sync`, every couple of seconds).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};

use crate::domain::GrantId;
use crate::store::{SharedStore, StoreError};

/// The feed is re-read with this much overlap, so a revocation committed late by a slow
/// transaction, or stamped by a replica whose clock lags a little, is not missed.
const SYNC_OVERLAP: Duration = Duration::seconds(60);

#[derive(Debug)]
pub struct RevocationList {
    revoked: RwLock<HashMap<GrantId, DateTime<Utc>>>,
    /// Entries older than this are dropped: every token they could deny has expired.
    retention: Duration,
    synced_at: Mutex<Option<DateTime<Utc>>>,
}

impl RevocationList {
    /// `retention` must cover the longest access-token lifetime.
    pub fn new(retention: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            retention,
            synced_at: Mutex::new(None),
        }
    }

    pub fn is_revoked(&self, grant: GrantId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&grant)
    }

    /// Records grants this instance just revoked.
    pub fn add(&self, grants: impl IntoIterator<Item = GrantId>, at: DateTime<Utc>) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        for grant in grants {
            revoked.insert(grant, at);
        }
    }

    /// Pulls revocations made by any replica since the last sync, and forgets expired ones.
    pub async fn sync(&self, store: &SharedStore, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let since = {
            let synced = self.synced_at.lock().unwrap_or_else(|p| p.into_inner());
            match *synced {
                Some(at) => at - SYNC_OVERLAP,
                None => now - self.retention,
            }
        };
        let fresh = store.list_revocations_since(since).await?;
        let count = fresh.len();
        {
            let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
            revoked.extend(fresh);
            let horizon = now - self.retention;
            revoked.retain(|_, at| *at >= horizon);
        }
        *self.synced_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(count)
    }
}
