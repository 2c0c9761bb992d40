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
    /// Rotates a refresh token in one `atomically!` write (binds: the old token's id, now, then
    /// the new token's id, grant id, prefix, hash, expiry, rotation time, creation time): marks
    /// the old one rotated if it was not yet, and only then stores the new one and touches the
    /// grant's `last_used_at`. Returns the new token's id, or no row when the old token was
    /// already rotated.
    pub rotate_refresh_token: &'static str,
    /// Redeems a code and opens its grant in one `atomically!` write: `{consume}` is the code's
    /// conditional UPDATE (binds: code id, now), and only when it took the code are the grant
    /// ($3-$10: id, app, user, secret, scope, audience, last used, created) and its first refresh
    /// token ($11-$17: id, grant, prefix, hash, expiry, rotation time, created) inserted.
    /// Returns the refresh token's id, or no row when the code was already used.
    pub redeem_with_grant: &'static str,
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
    // No writable CTEs: a whole transaction in one batch (`atomically!`), each statement
    // conditional on the one before it having changed a row. `changes()` is the count of the
    // last *completed* statement (https://www.sqlite.org/lang_corefunc.html#changes), so while
    // an INSERT's SELECT runs it still reports the UPDATE before it.
    rotate_refresh_token: "BEGIN IMMEDIATE; \
     UPDATE oauth2_refresh_tokens SET rotated_at = $2, updated_at = $2 \
     WHERE id = $1 AND rotated_at IS NULL; \
     INSERT INTO oauth2_refresh_tokens (id, grant_id, secret_prefix, hashed_secret, expires_at, \
     rotated_at, created_at, updated_at) SELECT $3, $4, $5, $6, $7, $8, $9, $9 \
     WHERE changes() = 1 RETURNING id; \
     UPDATE oauth2_grants SET last_used_at = $2 WHERE id = $4 AND changes() = 1; \
     COMMIT",
    redeem_with_grant: "BEGIN IMMEDIATE; {consume}; \
     INSERT INTO oauth2_grants (id, app_id, user_id, app_secret_id, scope, audience, \
     last_used_at, revoked_at, created_at, updated_at) \
     SELECT $3, $4, $5, $6, $7, $8, $9, NULL, $10, $10 WHERE changes() = 1; \
     INSERT INTO oauth2_refresh_tokens (id, grant_id, secret_prefix, hashed_secret, expires_at, \
     rotated_at, created_at, updated_at) SELECT $11, $12, $13, $14, $15, $16, $17, $17 \
     WHERE changes() = 1 RETURNING id; \
     COMMIT",
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
    // One statement, atomic on its own: the INSERT reads the UPDATE's `RETURNING`, so it
    // inserts nothing when the token was already rotated. Of two concurrent rotations the
    // second's UPDATE waits for the first's row lock and then re-checks `rotated_at IS NULL`
    // (READ COMMITTED, https://www.postgresql.org/docs/current/transaction-iso.html), so one
    // wins. Every sub-statement of a WITH runs whether or not it is read
    // (https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING).
    rotate_refresh_token: "WITH rotated AS (UPDATE oauth2_refresh_tokens \
     SET rotated_at = $2, updated_at = $2 WHERE id = $1 AND rotated_at IS NULL RETURNING id), \
     touched AS (UPDATE oauth2_grants SET last_used_at = $2 \
     WHERE id = $4 AND EXISTS (SELECT 1 FROM rotated)) \
     INSERT INTO oauth2_refresh_tokens (id, grant_id, secret_prefix, hashed_secret, expires_at, \
     rotated_at, created_at, updated_at) SELECT $3, $4, $5, $6, $7, $8, $9, $9 FROM rotated \
     RETURNING id",
    // The refresh token's foreign key to the grant inserted beside it holds: constraint
    // checks run at the end of the whole statement.
    redeem_with_grant: "WITH consumed AS ({consume} RETURNING id), \
     opened AS (INSERT INTO oauth2_grants (id, app_id, user_id, app_secret_id, scope, audience, \
     last_used_at, revoked_at, created_at, updated_at) \
     SELECT $3, $4, $5, $6, $7, $8, $9, NULL, $10, $10 FROM consumed) \
     INSERT INTO oauth2_refresh_tokens (id, grant_id, secret_prefix, hashed_secret, expires_at, \
     rotated_at, created_at, updated_at) SELECT $11, $12, $13, $14, $15, $16, $17, $17 \
     FROM consumed RETURNING id",
};
