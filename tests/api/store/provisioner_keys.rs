//! Provisioner keys: stored with a hash of their secret, found by it, listed by name, deleted
//! by name, unique per organization in any case.

use coderd::domain::provisioner::{ProvisionerKey, ProvisionerKeyId, ProvisionerTags};
use coderd::store::Constraint;

use super::{Deployment, assert_conflict_on, at};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(keys_are_found_by_their_secret_listed_and_deleted_by_name);

fn key(d: &Deployment, name: &str, pool: &str) -> ProvisionerKey {
    ProvisionerKey {
        id: ProvisionerKeyId::new(),
        organization_id: d.org.id,
        name: name.to_owned(),
        tags: ProvisionerTags([("pool".to_owned(), pool.to_owned())].into()),
        created_at: at(1),
    }
}

async fn keys_are_found_by_their_secret_listed_and_deleted_by_name(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let gpu = key(&d, "gpu-hosts", "gpu");
    let cpu = key(&d, "cpu-hosts", "cpu");
    d.store
        .insert_provisioner_key(&gpu, &[7; 32])
        .await
        .unwrap();
    d.store
        .insert_provisioner_key(&cpu, &[8; 32])
        .await
        .unwrap();
    assert_eq!(
        d.store
            .get_provisioner_key_by_secret(&[7; 32])
            .await
            .unwrap(),
        Some(gpu.clone())
    );
    assert_eq!(
        d.store
            .get_provisioner_key_by_secret(&[9; 32])
            .await
            .unwrap(),
        None
    );
    let listed = d.store.list_provisioner_keys(d.org.id).await.unwrap();
    assert_eq!(listed, vec![cpu.clone(), gpu.clone()]);

    let clash = key(&d, "GPU-Hosts", "other");
    let err = d
        .store
        .insert_provisioner_key(&clash, &[10; 32])
        .await
        .unwrap_err();
    assert_conflict_on(err, Constraint::ProvisionerKeyName);

    assert!(
        d.store
            .delete_provisioner_key(d.org.id, "Gpu-Hosts")
            .await
            .unwrap()
    );
    assert!(
        !d.store
            .delete_provisioner_key(d.org.id, "gpu-hosts")
            .await
            .unwrap()
    );
    assert_eq!(
        d.store
            .get_provisioner_key_by_secret(&[7; 32])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.store.list_provisioner_keys(d.org.id).await.unwrap(),
        vec![cpu]
    );
}
