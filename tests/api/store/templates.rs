//! Organizations, uploaded files, templates and their versions.

use coderd::domain::{
    DEFAULT_ORGANIZATION_NAME, FileId, Organization, OrganizationId, Role, StoredFile, Template,
    TemplateId, TemplateVersion, TemplateVersionId,
};
use coderd::store::{Constraint, DeleteTemplateOutcome};

use super::{Deployment, assert_conflict_on, at, new_user, open, t0, template_of};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    the_default_organization_is_created_once,
    files_are_stored_once_per_uploader_and_hash,
    template_versions_are_found_by_id_job_and_name,
    a_template_takes_its_active_version_once,
    a_template_in_use_is_not_deleted,
);

fn organization(name: &str) -> Organization {
    Organization {
        id: OrganizationId::new(),
        name: name.to_owned(),
        display_name: format!("{name} display"),
        description: "the deployment's organization".to_owned(),
        icon: "/org.svg".to_owned(),
        is_default: true,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn the_default_organization_is_created_once(backend: Backend) {
    let (store, _db) = open(&backend).await;
    let first = organization(DEFAULT_ORGANIZATION_NAME);
    assert_eq!(
        store
            .ensure_default_organization(first.clone())
            .await
            .unwrap(),
        first
    );
    // A second call, as on every start or on another replica, finds the first.
    let second = organization("another");
    assert_eq!(
        store
            .ensure_default_organization(second.clone())
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        store.get_organization(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_organization(second.id).await.unwrap(), None);
    assert_eq!(
        store.get_organization_by_name("CODER").await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store.get_organization_by_name("another").await.unwrap(),
        None
    );
    assert_eq!(
        store.get_organization_by_name("coder\u{0}").await.unwrap(),
        None
    );
}

async fn files_are_stored_once_per_uploader_and_hash(backend: Backend) {
    let d = Deployment::new(&backend).await;
    assert_eq!(
        d.store.get_file(d.file.id).await.unwrap(),
        Some(d.file.clone())
    );
    assert_eq!(d.store.get_file(FileId::new()).await.unwrap(), None);

    // The same bytes again from the same user: the stored file, nothing new.
    let again = StoredFile {
        id: FileId::new(),
        created_at: at(1),
        ..d.file.clone()
    };
    assert_eq!(
        d.store.insert_file(again.clone()).await.unwrap(),
        (d.file.clone(), false)
    );
    assert_eq!(d.store.get_file(again.id).await.unwrap(), None);

    // The same bytes from someone else are their own file.
    let alice = d
        .store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap();
    let theirs = StoredFile {
        id: FileId::new(),
        created_by: alice.id,
        data: (0..=255u8).collect(),
        ..d.file.clone()
    };
    assert_eq!(
        d.store.insert_file(theirs.clone()).await.unwrap(),
        (theirs.clone(), true)
    );
    assert_eq!(d.store.get_file(theirs.id).await.unwrap(), Some(theirs));
}

async fn template_versions_are_found_by_id_job_and_name(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (mut v2, job2) = d.version("v2", at(1));
    v2.template_id = Some(d.template.id);
    d.store
        .insert_template_version(v2.clone(), job2.clone())
        .await
        .unwrap();
    let (unattached, job3) = d.version("v3", at(2));
    d.store
        .insert_template_version(unattached.clone(), job3.clone())
        .await
        .unwrap();

    assert_eq!(
        d.store.get_template_version(v2.id).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        d.store
            .get_template_version(TemplateVersionId::new())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.store.get_template_version_by_job(job3.id).await.unwrap(),
        Some(unattached.clone())
    );
    assert_eq!(d.store.get_job(job2.id).await.unwrap(), Some(job2));
    assert_eq!(
        d.store
            .get_template_version_by_name(d.template.id, "V2")
            .await
            .unwrap(),
        Some(v2.clone())
    );
    // A version no template owns has no name within one.
    for name in ["v3", "v", "v2\u{0}"] {
        assert_eq!(
            d.store
                .get_template_version_by_name(d.template.id, name)
                .await
                .unwrap(),
            None,
            "{name}"
        );
    }
    assert_eq!(
        d.store.list_template_versions(d.template.id).await.unwrap(),
        vec![d.version.clone(), v2.clone()]
    );
    assert!(
        d.store
            .list_template_versions(TemplateId::new())
            .await
            .unwrap()
            .is_empty()
    );

    d.store
        .set_template_version_manifest(v2.id, r#"{"parameters":[]}"#, "# Read me ✓", at(5))
        .await
        .unwrap();
    let imported = TemplateVersion {
        manifest: Some(r#"{"parameters":[]}"#.to_owned()),
        readme: "# Read me ✓".to_owned(),
        updated_at: at(5),
        ..v2
    };
    assert_eq!(
        d.store.get_template_version(imported.id).await.unwrap(),
        Some(imported)
    );

    // A name is unique within its template, in any case; the refused version's job is not kept.
    let (mut dup, dup_job) = d.version("V1", at(6));
    dup.template_id = Some(d.template.id);
    let err = d
        .store
        .insert_template_version(dup.clone(), dup_job.clone())
        .await
        .unwrap_err();
    assert_conflict_on(err, Constraint::TemplateVersionName);
    assert_eq!(d.store.get_job(dup_job.id).await.unwrap(), None);
    assert_eq!(d.store.get_template_version(dup.id).await.unwrap(), None);
}

async fn a_template_takes_its_active_version_once(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (version, job) = d.version("first", at(1));
    d.store
        .insert_template_version(version.clone(), job)
        .await
        .unwrap();
    let other = template_of(&version, "Other");
    assert!(d.store.insert_template(other.clone()).await.unwrap());
    assert_eq!(
        d.store.get_template(other.id).await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        d.store
            .get_template_version(version.id)
            .await
            .unwrap()
            .unwrap()
            .template_id,
        Some(other.id)
    );

    // The version already belongs to `Other`: nothing is written.
    let third = template_of(&version, "third");
    assert!(!d.store.insert_template(third.clone()).await.unwrap());
    assert_eq!(d.store.get_template(third.id).await.unwrap(), None);

    // A live template's name is taken in any case; the version stays free.
    let (free, job) = d.version("free", at(2));
    d.store
        .insert_template_version(free.clone(), job)
        .await
        .unwrap();
    let err = d
        .store
        .insert_template(template_of(&free, "DOCKER"))
        .await
        .unwrap_err();
    assert_conflict_on(err, Constraint::TemplateName);
    assert_eq!(
        d.store
            .get_template_version(free.id)
            .await
            .unwrap()
            .unwrap()
            .template_id,
        None
    );

    assert_eq!(
        d.store
            .get_template_by_name(d.org.id, "OTHER")
            .await
            .unwrap(),
        Some(other.clone())
    );
    for (org, name) in [
        (d.org.id, "oth"),
        (d.org.id, "other\u{0}"),
        (OrganizationId::new(), "other"),
    ] {
        assert_eq!(
            d.store.get_template_by_name(org, name).await.unwrap(),
            None,
            "{name}"
        );
    }
    let names =
        |templates: Vec<Template>| templates.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(
        names(d.store.list_templates(Some(d.org.id)).await.unwrap()),
        ["docker", "Other"]
    );
    assert_eq!(
        names(d.store.list_templates(None).await.unwrap()),
        ["docker", "Other"]
    );
    assert!(
        d.store
            .list_templates(Some(OrganizationId::new()))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        d.store
            .set_template_active_version(other.id, free.id, at(7))
            .await
            .unwrap()
    );
    assert_eq!(
        d.store.get_template(other.id).await.unwrap(),
        Some(Template {
            active_version_id: free.id,
            updated_at: at(7),
            ..other
        })
    );
    assert!(
        !d.store
            .set_template_active_version(TemplateId::new(), free.id, at(7))
            .await
            .unwrap()
    );
}

async fn a_template_in_use_is_not_deleted(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, _) = d.create_workspace(d.owner.id, "dev").await;
    assert_eq!(
        d.store
            .delete_template(TemplateId::new(), at(1))
            .await
            .unwrap(),
        DeleteTemplateOutcome::NotFound
    );
    assert_eq!(
        d.store.delete_template(d.template.id, at(1)).await.unwrap(),
        DeleteTemplateOutcome::HasWorkspaces(1)
    );
    assert!(d.store.get_template(d.template.id).await.unwrap().is_some());

    d.store
        .mark_workspace_deleted(workspace.id, at(2))
        .await
        .unwrap();
    assert_eq!(
        d.store.delete_template(d.template.id, at(3)).await.unwrap(),
        DeleteTemplateOutcome::Deleted
    );
    assert_eq!(d.store.get_template(d.template.id).await.unwrap(), None);
    assert_eq!(
        d.store
            .get_template_by_name(d.org.id, "docker")
            .await
            .unwrap(),
        None
    );
    assert!(d.store.list_templates(None).await.unwrap().is_empty());
    assert!(
        !d.store
            .set_template_active_version(d.template.id, d.version.id, at(4))
            .await
            .unwrap()
    );
    assert_eq!(
        d.store.delete_template(d.template.id, at(4)).await.unwrap(),
        DeleteTemplateOutcome::NotFound
    );

    // The name is free again.
    let (version, job) = d.version("again", at(5));
    d.store
        .insert_template_version(version.clone(), job)
        .await
        .unwrap();
    assert!(
        d.store
            .insert_template(template_of(&version, "docker"))
            .await
            .unwrap()
    );
}
