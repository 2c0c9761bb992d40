//! `coder templates push|list|versions list|delete`: templates from a directory, as Coder's CLI
//! manages them, over the REST API only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{ApiClient, ClientArgs, api_status};
use super::output::{self, OutputFormat};
use super::prompt;
use super::spinner::Progress;
use super::users::path_segment;

/// This deployment's one organization, as Coder names its default.
pub const DEFAULT_ORG: &str = "coder";
/// How often an import job's status and logs are re-read.
const POLL: Duration = Duration::from_millis(300);
/// How long `push` waits for an import before giving up.
const IMPORT_MAX: Duration = Duration::from_secs(600);
/// Directories never sent to the server: version control metadata is not part of a template.
const SKIPPED_DIRS: [&str; 1] = [".git"];

#[derive(Debug, Args)]
pub struct TemplatesCommand {
    #[command(subcommand)]
    sub: TemplatesSubcommand,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum TemplatesSubcommand {
    /// Create or update a template from the files in a directory.
    Push(Push),
    /// List templates.
    #[command(alias = "ls")]
    List(List),
    /// Manage a template's versions.
    Versions(Versions),
    /// Delete templates (only those without workspaces).
    #[command(alias = "rm")]
    Delete(Delete),
}

#[derive(Debug, Args)]
struct OrgArg {
    /// The organization [default: the deployment's one, `coder`].
    #[arg(long = "org", short = 'O', env = "CODER_ORGANIZATION", default_value = DEFAULT_ORG)]
    org: String,
}

#[derive(Debug, Args)]
struct Push {
    /// The template's name [default: the directory's name].
    name: Option<String>,

    /// The directory holding the template (its `coder.yaml`).
    #[arg(short = 'd', long = "directory", default_value = ".")]
    directory: PathBuf,

    /// A message describing this version.
    #[arg(short = 'm', long)]
    message: Option<String>,

    /// The version's name [default: one the server picks].
    #[arg(long = "name")]
    version_name: Option<String>,

    /// Make this version the active one (new workspaces use it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    activate: bool,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,

    #[command(flatten)]
    org: OrgArg,
}

#[derive(Debug, Args)]
struct List {
    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,

    #[command(flatten)]
    org: OrgArg,
}

#[derive(Debug, Args)]
struct Versions {
    #[command(subcommand)]
    sub: VersionsSubcommand,
}

#[derive(Debug, Subcommand)]
enum VersionsSubcommand {
    /// List a template's versions.
    #[command(alias = "ls")]
    List(VersionsList),
}

#[derive(Debug, Args)]
struct VersionsList {
    /// The template's name.
    template: String,

    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,

    #[command(flatten)]
    org: OrgArg,
}

#[derive(Debug, Args)]
struct Delete {
    /// The templates' names.
    #[arg(required = true)]
    names: Vec<String>,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,

    #[command(flatten)]
    org: OrgArg,
}

impl TemplatesCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        match self.sub {
            TemplatesSubcommand::Push(cmd) => push(&client, cmd).await,
            TemplatesSubcommand::List(cmd) => list(&client, cmd).await,
            TemplatesSubcommand::Versions(Versions {
                sub: VersionsSubcommand::List(cmd),
            }) => versions(&client, cmd).await,
            TemplatesSubcommand::Delete(cmd) => delete(&client, cmd).await,
        }
    }
}

/// The template named `name`, or `None` when the organization has none by that name.
pub async fn find_template(
    client: &ApiClient,
    org: &str,
    name: &str,
) -> anyhow::Result<Option<Value>> {
    let path = format!(
        "/api/v2/organizations/{}/templates/{}",
        path_segment(org),
        path_segment(name)
    );
    match client.get(&path).await {
        Ok(t) => Ok(Some(t)),
        Err(e) if api_status(&e) == Some(reqwest::StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The template named `name`, or an error that says how to see which exist.
pub async fn template_by_name(client: &ApiClient, org: &str, name: &str) -> anyhow::Result<Value> {
    find_template(client, org, name).await?.with_context(|| {
        format!("template {name:?} not found; `coder templates list` shows which exist")
    })
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

async fn push(client: &ApiClient, cmd: Push) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(&cmd.directory)
        .with_context(|| format!("cannot read the directory {}", cmd.directory.display()))?;
    let name = match cmd.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .context("name the template: `coder templates push <name> -d <dir>`")?,
    };
    let org = cmd.org.org.as_str();
    let existing = find_template(client, org, &name).await?;
    if existing.is_none() && !cmd.yes {
        prompt::confirm(&format!("Create a new template {name:?}?"))?;
    }
    let archive = tar_directory(&dir)?;
    eprintln!(
        "Uploading {} ({} KiB)...",
        dir.display(),
        archive.len().div_ceil(1024)
    );
    let file: Value = client
        .upload("/api/v2/files", "application/x-tar", archive)
        .await
        .context("cannot upload the template")?;
    let mut body = json!({"file_id": file.get("hash"), "message": cmd.message.unwrap_or_default()});
    if let Some(t) = &existing {
        body["template_id"] = t.get("id").cloned().unwrap_or(Value::Null);
    }
    if let Some(v) = cmd.version_name {
        body["name"] = json!(v);
    }
    let version: Value = client
        .post(
            &format!(
                "/api/v2/organizations/{}/templateversions",
                path_segment(org)
            ),
            &body,
        )
        .await
        .context("cannot create the template version")?;
    let version = wait_for_import(client, text(&version, "id")).await?;
    let version_id = text(&version, "id").to_owned();
    let version_name = text(&version, "name").to_owned();
    match existing {
        Some(template) => {
            if cmd.activate {
                let _: Value = client
                    .patch(
                        &format!("/api/v2/templates/{}/versions", text(&template, "id")),
                        &json!({"id": version_id}),
                    )
                    .await
                    .context("cannot activate the new version")?;
                println!("Template {name:?} updated: version {version_name:?} is active.");
            } else {
                println!("Template {name:?}: version {version_name:?} uploaded, not activated.");
            }
        }
        None => {
            let _: Value = client
                .post(
                    &format!("/api/v2/organizations/{}/templates", path_segment(org)),
                    &json!({"name": name, "template_version_id": version_id}),
                )
                .await
                .context("cannot create the template")?;
            println!("Template {name:?} created with version {version_name:?}.");
        }
    }
    Ok(())
}

/// Polls the version's import job, printing its log lines as they come; fails with the job's
/// error when the import did not succeed.
async fn wait_for_import(client: &ApiClient, id: &str) -> anyhow::Result<Value> {
    let progress = Progress::start("Importing the template");
    let deadline = tokio::time::Instant::now() + IMPORT_MAX;
    let mut after = 0_i64;
    loop {
        let version: Value = client
            .get(&format!("/api/v2/templateversions/{id}"))
            .await?;
        let logs: Vec<Value> = client
            .get(&format!("/api/v2/templateversions/{id}/logs?after={after}"))
            .await?;
        for line in &logs {
            progress.line(&log_text(line));
            after = after.max(line.get("id").and_then(Value::as_i64).unwrap_or(after));
        }
        let job = version.get("job").cloned().unwrap_or(Value::Null);
        match text(&job, "status") {
            "pending" | "running" | "canceling" => {}
            "succeeded" if logs.is_empty() => return Ok(version),
            "succeeded" => continue,
            status => bail!(
                "the template import {status}: {}",
                one_line(text(&job, "error"))
            ),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the template import did not finish within {IMPORT_MAX:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A provisioner log line as Coder's CLI shows it: the stage, then the output.
pub fn log_text(line: &Value) -> String {
    let stage = text(line, "stage");
    let out = text(line, "output");
    if stage.is_empty() {
        out.to_owned()
    } else {
        format!("{stage}: {out}")
    }
}

/// A multi-line error as one line, so a failure is one line of output.
pub fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if joined.is_empty() {
        "no reason given".to_owned()
    } else {
        joined.join("; ")
    }
}

/// A tar archive of `dir`'s files, paths relative to it, in a stable order; symlinks are kept as
/// links (not followed), and `.git` is left out.
pub fn tar_directory(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    if !files.iter().any(|p| p == Path::new("coder.yaml")) {
        bail!(
            "{} has no coder.yaml; a template directory needs one (see examples/templates)",
            dir.display()
        );
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for rel in &files {
        builder
            .append_path_with_name(dir.join(rel), rel)
            .with_context(|| format!("cannot add {} to the archive", rel.display()))?;
    }
    builder.into_inner().context("cannot finish the archive")
}

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let here = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .with_context(|| format!("cannot read {}", here.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", here.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                collect(root, &path, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

async fn list(client: &ApiClient, cmd: List) -> anyhow::Result<()> {
    let templates: Vec<Value> = client
        .get(&format!(
            "/api/v2/organizations/{}/templates",
            path_segment(&cmd.org.org)
        ))
        .await?;
    match cmd.output {
        OutputFormat::Json => println!("{}", output::json(&templates)?),
        OutputFormat::Table => {
            if templates.is_empty() {
                eprintln!(
                    "No templates found; create one with `coder templates push <name> -d <dir>`."
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = templates
                .iter()
                .map(|t| {
                    vec![
                        text(t, "name").to_owned(),
                        output::timestamp(Some(text(t, "updated_at"))),
                        t.get("active_user_count")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                            .to_string(),
                        text(t, "active_version_id").to_owned(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["name", "last updated", "used by", "active version id"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

async fn versions(client: &ApiClient, cmd: VersionsList) -> anyhow::Result<()> {
    let template = template_by_name(client, &cmd.org.org, &cmd.template).await?;
    let active = text(&template, "active_version_id");
    let versions: Vec<Value> = client
        .get(&format!(
            "/api/v2/templates/{}/versions",
            text(&template, "id")
        ))
        .await?;
    match cmd.output {
        OutputFormat::Json => println!("{}", output::json(&versions)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|v| {
                    let by = v.get("created_by").map(|u| text(u, "username"));
                    let status = v.get("job").map(|j| text(j, "status"));
                    vec![
                        text(v, "name").to_owned(),
                        output::timestamp(Some(text(v, "created_at"))),
                        by.unwrap_or_default().to_owned(),
                        status.unwrap_or_default().to_owned(),
                        if text(v, "id") == active {
                            "Active".to_owned()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["name", "created at", "created by", "status", "active"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

async fn delete(client: &ApiClient, cmd: Delete) -> anyhow::Result<()> {
    let mut found = Vec::new();
    for name in &cmd.names {
        found.push(template_by_name(client, &cmd.org.org, name).await?);
    }
    if !cmd.yes {
        prompt::confirm(&format!(
            "Delete these templates: {}?",
            cmd.names.join(", ")
        ))?;
    }
    for (name, template) in cmd.names.iter().zip(&found) {
        client
            .delete(&format!("/api/v2/templates/{}", text(template, "id")))
            .await
            .with_context(|| format!("cannot delete template {name:?}"))?;
        println!("Deleted template {name:?}.");
    }
    Ok(())
}
