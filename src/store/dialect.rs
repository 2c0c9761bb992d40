//! The SQL that differs between SQLite and PostgreSQL, named in one place with the reason for
//! each difference.
//!
//! Every other query is one text for both: numbered `$N` placeholders (SQLite accepts them
//! too), `RETURNING`, partial indexes, and no server-side clock (times are always bound
//! parameters from the `Clock`). The store evens out three differences that are not SQL
//! elsewhere: timestamps (`time.rs`), how a uniqueness conflict is reported (`error.rs`), and
//! NUL characters in text (`unstorable` in `mod.rs`).

pub(super) struct Dialect {
    /// The backend's name, for logs.
    pub name: &'static str,
    /// Takes the oldest pending job whose tags are in `{tags}` (binds: worker id, now, then the
    /// tag sets from $3); `claim_job` fills in `{tags}` and adds the `RETURNING`.
    pub claim_job: &'static str,
    /// Aggregates the rows of `SUMMARY_COLUMNS` (selected from `listed`) into the two columns
    /// `summaries_from_page` reads: the text fields as JSON, the ids as packed bytes, both in
    /// the same order. One aggregation feeds each row to both; an `ORDER BY` or `DISTINCT`
    /// inside either aggregate would sort its input apart and break the pairing.
    pub summary_page: &'static str,
    /// Orders every workspace list as `sort_in_list_order` does: by the name lower-cased byte by
    /// byte, then the id.
    pub list_order: &'static str,
}

pub(super) const SQLITE: Dialect = Dialect {
    name: "sqlite",
    // SQLite has no row locks; its single writer makes this one statement atomic.
    claim_job: "UPDATE provisioner_jobs SET status = 'running', worker_id = $1, \
     started_at = $2, updated_at = $2, heartbeat_at = $2 \
     WHERE status = 'pending' AND id = (SELECT id FROM provisioner_jobs WHERE status = 'pending' \
     AND tags IN ({tags}) ORDER BY created_at, id LIMIT 1)",
    // UUIDs are 16-byte blobs in SQLite; `||` and `group_concat` copy a blob's bytes as they
    // are (as text, in this UTF-8 database), and the cast makes the result a blob again.
    // `hex()` on each id instead was about 40% of the query.
    summary_page: "json_group_array(json_array(name, owner_name, template_name, \
     template_display_name, template_icon, transition, job_status)), \
     CAST(COALESCE(group_concat(id || template_id || active_version_id || template_version_id, \
     ''), '') AS BLOB)",
    // SQLite's `lower()` and its default BINARY collation already compare ASCII names byte by
    // byte.
    list_order: "lower(w.name), w.id",
};

pub(super) const POSTGRES: Dialect = Dialect {
    name: "postgres",
    // Row locks let several replicas poll one queue: each skips the jobs another is taking.
    claim_job: "UPDATE provisioner_jobs SET status = 'running', worker_id = $1, \
     started_at = $2, updated_at = $2, heartbeat_at = $2 \
     WHERE id = (SELECT id FROM provisioner_jobs WHERE status = 'pending' \
     AND tags IN ({tags}) ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)",
    // An empty page aggregates to NULL, hence the `COALESCE`s.
    summary_page: "COALESCE(json_agg(json_build_array(name, owner_name, \
     template_name, template_display_name, template_icon, transition, job_status)), '[]')::text, \
     COALESCE(string_agg(uuid_send(id) || uuid_send(template_id) || uuid_send(active_version_id) \
     || uuid_send(template_version_id), ''::bytea), ''::bytea)",
    // Byte by byte whatever the database's locale, so both backends list alike (a locale
    // collation would, say, ignore hyphens).
    list_order: "lower(w.name) COLLATE \"C\", w.id",
};
