//! Lists of workspaces, the hottest reads of the server: one page in one query, the filter's
//! conditions only for its present fields, and a count query only when the page cannot tell
//! the total (docs/benchmarks.md).

use sqlx::query::QueryAs;
use sqlx::{Database, Encode, Type};
use uuid::Uuid;

use super::error::corrupt;
use super::pool::on;
use super::workspaces::{WORKSPACE_COLUMNS, WorkspaceRow};
use super::{Store, StoreError, StoreResult, convert_all, qualified};
use crate::domain::{
    JobStatus, Page, TemplateId, TemplateVersionId, Transition, UserId, Workspace, WorkspaceId,
    WorkspaceStatus, WorkspaceSummary,
};

/// Which workspaces a listing returns; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceFilter {
    pub owner_id: Option<UserId>,
    /// Case-insensitive substring of the workspace name.
    pub name: Option<String>,
    /// Case-insensitive template name.
    pub template_name: Option<String>,
    pub template_id: Option<TemplateId>,
    pub status: Option<WorkspaceStatus>,
}

/// Where one owner's workspace lists stand (migration 0012): counters the database bumps in the
/// same transaction as every change such a list shows, the owner's own and the templates'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceListGenerations {
    pub owner: i64,
    pub templates: i64,
}

/// The key of the templates' generation row: the nil UUID, which no user has.
const TEMPLATES_GENERATION_KEY: Uuid = Uuid::nil();

impl Store {
    /// The workspaces `filter` matches, a page of them in list order, and how many match.
    pub async fn list_workspaces(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
    ) -> StoreResult<(Vec<Workspace>, i64)> {
        let sql = self.list_page_sql(&qualified("w", WORKSPACE_COLUMNS), filter);
        let rows: Vec<WorkspaceRow> = on!(&self.pool, |pool| {
            bind_list_filter(sqlx::query_as(&sql), filter)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?
        });
        let count = self.count_workspaces(filter, page, rows.len()).await?;
        Ok((convert_all(rows)?, count))
    }

    /// The same list as `list_workspaces`, as summaries read in one query (for views that do
    /// not need each workspace's build, agent and apps).
    pub async fn list_workspace_summaries(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
    ) -> StoreResult<(Vec<WorkspaceSummary>, i64)> {
        // One row for the page instead of a row per workspace: decoding rows column by
        // column (on SQLite, also handing each from sqlx's worker thread to this task)
        // cost more than the query (docs/benchmarks.md).
        let sql = format!(
            "SELECT {} FROM ({}) listed",
            self.dialect().summary_page,
            self.list_page_sql(SUMMARY_COLUMNS, filter)
        );
        let (texts, ids): (String, Vec<u8>) = on!(&self.pool, |pool| {
            bind_list_filter(sqlx::query_as(&sql), filter)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_one(pool)
                .await?
        });
        let mut rows = summaries_from_page(&texts, &ids)?;
        // An aggregate's input order is not guaranteed (and sorting there cost SQLite
        // a second sort): the page is put in list order here.
        sort_in_list_order(&mut rows);
        let count = self.count_workspaces(filter, page, rows.len()).await?;
        Ok((rows, count))
    }

    /// The generations of `owner`'s workspace lists and of the templates (migration 0012), read
    /// in one statement by primary key. A list read after them reflects at least every change
    /// they count; equal generations later mean no change the list shows has committed since.
    pub async fn workspace_list_generations(
        &self,
        owner: UserId,
    ) -> StoreResult<WorkspaceListGenerations> {
        const SQL: &str = "SELECT \
             COALESCE((SELECT generation FROM workspace_list_generations WHERE owner_id = $1), 0), \
             COALESCE((SELECT generation FROM workspace_list_generations WHERE owner_id = $2), 0)";
        let (owner_generation, templates): (i64, i64) = on!(&self.pool, |pool| {
            sqlx::query_as(SQL)
                .bind(owner.0)
                .bind(TEMPLATES_GENERATION_KEY)
                .fetch_one(pool)
                .await?
        });
        Ok(WorkspaceListGenerations {
            owner: owner_generation,
            templates,
        })
    }

    /// One page of a workspace list: `columns` of the workspaces `filter` matches, in list
    /// order. Binds: the filter (`bind_list_filter`), then limit and offset.
    fn list_page_sql(&self, columns: &str, filter: &WorkspaceFilter) -> String {
        let (from, n) = list_from(filter);
        format!(
            "SELECT {columns} {from} ORDER BY {} LIMIT ${} OFFSET ${}",
            self.dialect().list_order,
            n + 1,
            n + 2
        )
    }

    /// How many workspaces match `filter`, given that the page read at `page` held `found`.
    async fn count_workspaces(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
        found: usize,
    ) -> StoreResult<i64> {
        if let Some(total) = total_from_page(page, found) {
            return Ok(total);
        }
        let (from, _) = list_from(filter);
        let count_sql = format!("SELECT COUNT(*) {from}");
        let (count,): (i64,) = on!(&self.pool, |pool| {
            bind_list_filter(sqlx::query_as(&count_sql), filter)
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }
}

/// The joins of every workspace list; `list_from` adds the filter's conditions. The latest
/// build's transition, version and job status are the workspace's own copies (migration 0005),
/// so a list reads no builds or jobs. A workspace whose first build is not in yet is not
/// listed.
const LIST_JOINS: &str = "FROM workspaces w \
     JOIN users o ON o.id = w.owner_id \
     JOIN templates t ON t.id = w.template_id \
     WHERE NOT w.deleted AND w.latest_job_id IS NOT NULL";

/// A workspace's status, derived from its latest build exactly as `WorkspaceStatus::derive`
/// does, so filtering by status happens in the database.
const STATUS_SQL: &str = "(CASE \
       WHEN w.latest_job_status = 'running' AND w.latest_transition = 'start' THEN 'starting' \
       WHEN w.latest_job_status = 'running' AND w.latest_transition = 'stop' THEN 'stopping' \
       WHEN w.latest_job_status = 'running' THEN 'deleting' \
       WHEN w.latest_job_status = 'succeeded' AND w.latest_transition = 'start' THEN 'running' \
       WHEN w.latest_job_status = 'succeeded' AND w.latest_transition = 'stop' THEN 'stopped' \
       WHEN w.latest_job_status = 'succeeded' THEN 'deleted' \
       ELSE w.latest_job_status END)";

/// The `FROM ... WHERE` of a workspace list and how many placeholders it uses. Only the
/// filter's present fields get a condition, numbered from $1 in `bind_list_filter`'s order
/// (owner, name, template name, template id, status): the catch-all form
/// `($1 IS NULL OR w.owner_id = $1)` kept SQLite from using the owner index, so listing one
/// user's workspaces read every workspace.
fn list_from(filter: &WorkspaceFilter) -> (String, usize) {
    let conditions = [
        filter.owner_id.is_some().then_some("w.owner_id = {}"),
        filter
            .name
            .is_some()
            .then_some("lower(w.name) LIKE '%' || lower({}) || '%'"),
        filter
            .template_name
            .is_some()
            .then_some("lower(t.name) = lower({})"),
        filter.template_id.is_some().then_some("w.template_id = {}"),
        filter.status.is_some().then_some("{status} = {}"),
    ];
    let mut sql = String::from(LIST_JOINS);
    let mut placeholders = 0;
    for condition in conditions.into_iter().flatten() {
        placeholders += 1;
        sql.push_str(" AND ");
        sql.push_str(
            &condition
                .replace("{status}", STATUS_SQL)
                .replace("{}", &format!("${placeholders}")),
        );
    }
    (sql, placeholders)
}

/// Binds the present fields of a workspace list's filter to `list_from`'s placeholders. Generic
/// over the backend: the filter binds only ids and text, which both encode.
fn bind_list_filter<'q, DB, O>(
    mut query: QueryAs<'q, DB, O, DB::Arguments<'q>>,
    filter: &'q WorkspaceFilter,
) -> QueryAs<'q, DB, O, DB::Arguments<'q>>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    if let Some(owner) = filter.owner_id {
        query = query.bind(owner.0);
    }
    if let Some(name) = filter.name.as_deref() {
        query = query.bind(name);
    }
    if let Some(template_name) = filter.template_name.as_deref() {
        query = query.bind(template_name);
    }
    if let Some(template) = filter.template_id {
        query = query.bind(template.0);
    }
    if let Some(status) = filter.status {
        query = query.bind(status.as_str());
    }
    query
}

/// Sorts summaries read through an aggregate into list order (the dialect's `list_order`): the
/// name lower-cased byte by byte, then the id. Sorting here instead of in the aggregate saved
/// SQLite a second sort (docs/benchmarks.md).
fn sort_in_list_order(rows: &mut [WorkspaceSummary]) {
    fn lowered(name: &str) -> impl Iterator<Item = u8> + '_ {
        name.bytes().map(|c| c.to_ascii_lowercase())
    }
    rows.sort_by(|a, b| {
        lowered(&a.name)
            .cmp(lowered(&b.name))
            .then_with(|| a.id.0.cmp(&b.id.0))
    });
}

/// The number of matches a page tells by itself: one that is not full ends the list, unless it
/// is empty past the first page (an offset beyond the end says nothing about the size).
fn total_from_page(page: Page, found: usize) -> Option<i64> {
    let found = found as i64;
    (found < page.limit && (found > 0 || page.offset == 0)).then_some(page.offset + found)
}

/// The columns a page of workspace summaries is aggregated from (`summaries_from_page`), from
/// the workspace list's joins.
const SUMMARY_COLUMNS: &str = "w.id, w.name, o.username AS owner_name, t.id AS template_id, \
     t.name AS template_name, t.display_name AS template_display_name, t.icon AS template_icon, \
     t.active_version_id, w.latest_template_version_id AS template_version_id, \
     w.latest_transition AS transition, w.latest_job_status AS job_status";

/// How many bytes of ids each workspace adds to a page: its own, its template's, the template's
/// active version's and its latest build's version's, 16 bytes each.
const SUMMARY_IDS_LEN: usize = 4 * 16;

/// The text fields of one workspace summary, read from a JSON array in this order.
#[derive(serde::Deserialize)]
struct SummaryTexts {
    name: String,
    owner_name: String,
    template_name: String,
    template_display_name: String,
    template_icon: String,
    transition: String,
    job_status: String,
}

/// A page of workspace summaries from the one row `list_workspace_summaries` reads: `texts`, a
/// JSON array with each workspace's text fields (`SummaryTexts`), and `ids`, the same
/// workspaces' ids packed as 16-byte UUIDs (`SUMMARY_IDS_LEN` per workspace) in the same
/// order. Ids travel as bytes because turning them into text (`hex()` on four blobs a row)
/// was about 40% of what the query cost SQLite (docs/benchmarks.md).
fn summaries_from_page(texts: &str, ids: &[u8]) -> StoreResult<Vec<WorkspaceSummary>> {
    let texts: Vec<SummaryTexts> = serde_json::from_str(texts).map_err(|e| unreadable(&e))?;
    if ids.len() != texts.len() * SUMMARY_IDS_LEN {
        return Err(unreadable(&format_args!(
            "{} bytes of ids for {} workspaces",
            ids.len(),
            texts.len()
        )));
    }
    texts
        .into_iter()
        .zip(ids.chunks_exact(SUMMARY_IDS_LEN))
        .map(|(t, ids)| summary(t, ids))
        .collect()
}

fn summary(t: SummaryTexts, ids: &[u8]) -> StoreResult<WorkspaceSummary> {
    let id = |n: usize| {
        ids.get(n * 16..(n + 1) * 16)
            .and_then(|bytes| Uuid::from_slice(bytes).ok())
            .ok_or_else(|| unreadable(&"a short id"))
    };
    Ok(WorkspaceSummary {
        id: WorkspaceId(id(0)?),
        template_id: TemplateId(id(1)?),
        template_active_version_id: TemplateVersionId(id(2)?),
        build_template_version_id: TemplateVersionId(id(3)?),
        transition: Transition::parse(&t.transition)
            .ok_or_else(|| corrupt("workspaces.latest_transition", &t.transition))?,
        job_status: JobStatus::parse(&t.job_status)
            .ok_or_else(|| corrupt("workspaces.latest_job_status", &t.job_status))?,
        name: t.name,
        owner_name: t.owner_name,
        template_name: t.template_name,
        template_display_name: t.template_display_name,
        template_icon: t.template_icon,
    })
}

/// A page of summaries that does not read as `summaries_from_page` expects.
fn unreadable(detail: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column: "workspace summaries",
        detail: detail.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::{list_from, summaries_from_page, total_from_page};
    use crate::domain::{JobStatus, Page, Transition, UserId, WorkspaceStatus};
    use crate::store::WorkspaceFilter;
    use uuid::Uuid;

    #[test]
    fn only_present_filters_become_conditions_numbered_from_one() {
        let (sql, n) = list_from(&WorkspaceFilter::default());
        assert_eq!(n, 0);
        assert!(sql.ends_with("w.latest_job_id IS NOT NULL"), "{sql}");

        let filter = WorkspaceFilter {
            owner_id: Some(UserId::new()),
            status: Some(WorkspaceStatus::Running),
            ..WorkspaceFilter::default()
        };
        let (sql, n) = list_from(&filter);
        assert_eq!(n, 2);
        assert!(sql.contains("AND w.owner_id = $1 AND (CASE"), "{sql}");
        assert!(sql.ends_with("END) = $2"), "{sql}");
        assert!(!sql.contains("IS NULL"), "{sql}");
    }

    fn page(limit: i64, offset: i64) -> Page {
        Page { limit, offset }
    }

    #[test]
    fn a_page_that_is_not_full_ends_the_list() {
        assert_eq!(total_from_page(page(100, 0), 0), Some(0));
        assert_eq!(total_from_page(page(100, 0), 3), Some(3));
        assert_eq!(total_from_page(page(2, 4), 1), Some(5));
    }

    #[test]
    fn a_full_page_or_an_empty_one_past_the_start_needs_a_count() {
        assert_eq!(total_from_page(page(2, 0), 2), None);
        assert_eq!(total_from_page(page(2, 4), 0), None);
        assert_eq!(total_from_page(page(0, 0), 0), None);
    }

    const TEXTS: &str = r#"[["dev","alice","docker","Docker","/icon.svg","start","succeeded"]]"#;

    #[test]
    fn a_page_pairs_each_workspace_texts_with_its_four_ids_in_order() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let packed: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
        let page = summaries_from_page(TEXTS, &packed).expect("a page");
        let [w] = page.as_slice() else {
            panic!("one workspace, got {}", page.len())
        };
        assert_eq!(
            (w.id.0, w.template_id.0),
            (ids[0], ids[1]),
            "workspace, then template"
        );
        assert_eq!(w.template_active_version_id.0, ids[2]);
        assert_eq!(w.build_template_version_id.0, ids[3]);
        assert!(w.outdated());
        assert_eq!((w.name.as_str(), w.owner_name.as_str()), ("dev", "alice"));
        assert_eq!(w.template_display_name, "Docker");
        assert_eq!(
            (w.transition, w.job_status),
            (Transition::Start, JobStatus::Succeeded)
        );
    }

    #[test]
    fn an_empty_page_has_no_ids() {
        assert!(summaries_from_page("[]", &[]).expect("empty").is_empty());
    }

    #[test]
    fn ids_that_do_not_match_the_texts_are_an_error_not_a_misread() {
        for len in [0, 63, 65, 128] {
            assert!(
                summaries_from_page(TEXTS, &vec![7; len]).is_err(),
                "{len} bytes of ids for one workspace"
            );
        }
        let unknown_status = TEXTS.replace("succeeded", "exploded");
        assert!(summaries_from_page(&unknown_status, &[7; 64]).is_err());
    }
}
