//! Provisioner daemons as every replica sees them: recorded when they connect, kept fresh by
//! their replica's heartbeat, released when they leave (never by a replica that no longer
//! holds them), listed with their key's name and whether a build runs on their host.

use coderd::domain::provisioner::{
    DaemonStatus, ProvisionerDaemon, ProvisionerKey, ProvisionerKeyId, ProvisionerTags,
};
use coderd::domain::{JobStatus, Replica, ReplicaId};

use super::{Deployment, any, at};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(daemons_are_listed_with_their_replica_key_and_work);

fn replica(minute: i64) -> Replica {
    Replica {
        id: ReplicaId::new(),
        hostname: "host".to_owned(),
        relay_address: "http://127.0.0.1:1".to_owned(),
        version: "1".to_owned(),
        started_at: at(minute),
        stopped_at: None,
        updated_at: at(minute),
    }
}

fn daemon(
    d: &Deployment,
    key: &ProvisionerKey,
    name: &str,
    replica: &Replica,
) -> ProvisionerDaemon {
    ProvisionerDaemon {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: d.org.id,
        key_id: key.id,
        name: name.to_owned(),
        version: "0.1.0".to_owned(),
        tags: key.tags.clone(),
        replica_id: Some(replica.id),
        created_at: at(1),
        last_seen_at: at(1),
    }
}

async fn daemons_are_listed_with_their_replica_key_and_work(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let key = ProvisionerKey {
        id: ProvisionerKeyId::new(),
        organization_id: d.org.id,
        name: "remote".to_owned(),
        tags: ProvisionerTags([("pool".to_owned(), "remote".to_owned())].into()),
        created_at: at(0),
    };
    d.store
        .insert_provisioner_key(&key, &[1; 32])
        .await
        .unwrap();
    let (a, b) = (replica(0), replica(0));
    d.store.insert_replica(a.clone()).await.unwrap();
    d.store.insert_replica(b.clone()).await.unwrap();
    let west = daemon(&d, &key, "west", &a);
    let east = daemon(&d, &key, "East", &a);
    d.store.upsert_provisioner_daemon(&west).await.unwrap();
    d.store.upsert_provisioner_daemon(&east).await.unwrap();
    let listed = d.store.list_provisioner_daemons(d.org.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|l| l.daemon.clone()).collect::<Vec<_>>(),
        vec![east.clone(), west.clone()],
        "by name, ignoring case"
    );
    assert!(
        listed
            .iter()
            .all(|l| l.key_name.as_deref() == Some("remote") && !l.running_job)
    );
    assert_eq!(listed[0].daemon.status(false, at(1)), DaemonStatus::Idle);

    // West moves to replica b; a's late release of it must not take it from b.
    let moved = ProvisionerDaemon {
        replica_id: Some(b.id),
        last_seen_at: at(2),
        created_at: at(2),
        ..west.clone()
    };
    d.store.upsert_provisioner_daemon(&moved).await.unwrap();
    d.store
        .release_provisioner_daemon(&west.id, a.id, at(3))
        .await
        .unwrap();
    d.store
        .release_provisioner_daemon(&east.id, a.id, at(3))
        .await
        .unwrap();
    let listed = d.store.list_provisioner_daemons(d.org.id).await.unwrap();
    let (e, w) = (&listed[0].daemon, &listed[1].daemon);
    assert_eq!((e.replica_id, e.last_seen_at), (None, at(3)));
    assert_eq!(e.status(false, at(3)), DaemonStatus::Offline);
    assert_eq!(
        (w.replica_id, w.last_seen_at, w.created_at),
        (Some(b.id), at(2), at(1)),
        "the first connection's time is kept"
    );

    // b's heartbeat keeps west seen (and heals a release that raced its reconnection); a
    // replica that stops lets go of what it held.
    d.store
        .refresh_provisioner_daemons(b.id, std::slice::from_ref(&west.id), at(4))
        .await
        .unwrap();
    let w = d.store.list_provisioner_daemons(d.org.id).await.unwrap()[1]
        .daemon
        .clone();
    assert_eq!((w.replica_id, w.last_seen_at), (Some(b.id), at(4)));
    assert_eq!(w.status(false, at(4)), DaemonStatus::Idle);
    assert_eq!(
        w.status(false, at(5)),
        DaemonStatus::Offline,
        "a replica silent for its stale time no longer vouches for it"
    );

    // A build running for a workspace placed on west makes it busy.
    let (workspace, build) = d.create_workspace(d.owner.id, "far").await;
    d.store
        .set_workspace_provisioner(workspace.id, &west.id, at(4))
        .await
        .unwrap();
    let claimed = d.store.claim_job("worker", &any(), at(4)).await.unwrap();
    assert_eq!(claimed.map(|j| j.id), Some(build.job_id));
    let listed = d.store.list_provisioner_daemons(d.org.id).await.unwrap();
    assert!(listed[1].running_job && !listed[0].running_job);
    assert_eq!(listed[1].daemon.status(true, at(4)), DaemonStatus::Busy);
    assert!(
        d.store
            .complete_job(build.job_id, JobStatus::Succeeded, "", at(4))
            .await
            .unwrap()
    );
    assert!(!d.store.list_provisioner_daemons(d.org.id).await.unwrap()[1].running_job);

    // Deleting the key keeps the daemon, without a key name; stopping b releases west.
    assert!(
        d.store
            .delete_provisioner_key(d.org.id, "remote")
            .await
            .unwrap()
    );
    d.store.stop_replica(b.id, at(6)).await.unwrap();
    let listed = d.store.list_provisioner_daemons(d.org.id).await.unwrap();
    assert_eq!(listed[1].key_name, None);
    assert_eq!(listed[1].daemon.replica_id, None);
}
