//! `coder create|list|show|start|stop|restart|delete|logs`: workspaces as Coder's CLI handles
//! them, over the REST API only. Builds stream their logs and a failed build is a non-zero exit
//! with a one-line reason.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use super::client::{ApiClient, ClientArgs};
use super::output::{self, OutputFormat};
use super::prompt;
use super::spinner::Progress;
use super::templates::{DEFAULT_ORG, log_text, one_line, template_by_name};
use super::users::path_segment;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `[owner/]name` as Coder's CLI takes a workspace; no owner means the signed-in user.
fn split_workspace(raw: &str) -> (&str, &str) {
    match raw.split_once('/') {
        Some((owner, name)) if !owner.is_empty() => (owner, name),
        _ => ("me", raw.trim_start_matches('/')),
    }
}

async fn workspace_by_name(client: &ApiClient, raw: &str) -> anyhow::Result<Value> {
    let (owner, name) = split_workspace(raw);
    client
        .get(&format!(
            "/api/v2/users/{}/workspace/{}",
            path_segment(owner),
            path_segment(name)
        ))
        .await
        .with_context(|| format!("cannot find workspace {raw:?}"))
}

#[derive(Debug, Args)]
pub struct CreateCommand {
    /// The workspace's name, optionally `owner/name` (owners may create for others).
    name: Option<String>,

    /// The template to create it from.
    #[arg(short, long, env = "CODER_TEMPLATE_NAME")]
    template: Option<String>,

    /// A parameter value, `name=value`; repeat for more.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,

    /// The organization the template is in.
    #[arg(long = "org", short = 'O', env = "CODER_ORGANIZATION", default_value = DEFAULT_ORG)]
    org: String,

    #[command(flatten)]
    client: ClientArgs,
}

impl CreateCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let name = match self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_owned(),
            None if prompt::interactive() => {
                prompt::ask("Specify a name for your workspace", None)?
            }
            None => bail!("name the workspace: `coder create <name> --template <template>`"),
        };
        let template_name = match self.template.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => t.to_owned(),
            None if prompt::interactive() => prompt::ask("Template to use", None)?,
            None => bail!("choose a template with --template; `coder templates list` shows them"),
        };
        let template = template_by_name(&client, &self.org, &template_name).await?;
        let parameters: Vec<Value> = client
            .get(&format!(
                "/api/v2/templateversions/{}/rich-parameters",
                text(&template, "active_version_id")
            ))
            .await?;
        let values = parameter_values(&template_name, &parameters, &self.parameters)?;
        let (owner, ws_name) = split_workspace(&name);
        if !self.yes && prompt::interactive() {
            prompt::confirm(&format!(
                "Create workspace {ws_name:?} from template {template_name:?}?"
            ))?;
        }
        let workspace: Value = client
            .post(
                &format!("/api/v2/users/{}/workspaces", path_segment(owner)),
                &json!({
                    "name": ws_name,
                    "template_id": text(&template, "id"),
                    "rich_parameter_values": values,
                }),
            )
            .await
            .context("cannot create the workspace")?;
        let build_id = workspace
            .get("latest_build")
            .map(|b| text(b, "id"))
            .unwrap_or_default();
        follow_build(&client, build_id, &format!("Building workspace {ws_name}")).await?;
        println!("The {ws_name} workspace has been created and is running.");
        Ok(())
    }
}

/// The values to send: each `--parameter`, checked against the template's parameters; a
/// required parameter without a value is asked for on a terminal and an error elsewhere.
fn parameter_values(
    template: &str,
    parameters: &[Value],
    given: &[String],
) -> anyhow::Result<Vec<Value>> {
    let mut values = Vec::new();
    for raw in given {
        let (name, value) = raw
            .split_once('=')
            .with_context(|| format!("--parameter {raw:?} is not name=value"))?;
        let name = name.trim();
        if !parameters.iter().any(|p| text(p, "name") == name) {
            let known: Vec<&str> = parameters.iter().map(|p| text(p, "name")).collect();
            bail!(
                "template {template:?} has no parameter {name:?} (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        values.push(json!({"name": name, "value": value}));
    }
    let has = |name: &str| values.iter().any(|v| v["name"] == name);
    let missing: Vec<&Value> = parameters
        .iter()
        .filter(|p| p.get("required").and_then(Value::as_bool) == Some(true))
        .filter(|p| !has(text(p, "name")))
        .collect();
    if missing.is_empty() {
        return Ok(values);
    }
    if !prompt::interactive() {
        let names: Vec<&str> = missing.iter().map(|p| text(p, "name")).collect();
        bail!(
            "template {template:?} needs values for {}: pass --parameter name=value for each",
            names.join(", ")
        );
    }
    for p in missing {
        let name = text(p, "name");
        let label = match text(p, "display_name") {
            "" => name,
            d => d,
        };
        let description = text(p, "description");
        if !description.is_empty() {
            eprintln!("{label}: {description}");
        }
        if let Some(options) = p
            .get("options")
            .and_then(Value::as_array)
            .filter(|o| !o.is_empty())
        {
            let listed: Vec<String> = options
                .iter()
                .map(|o| format!("{} ({})", text(o, "value"), text(o, "name")))
                .collect();
            eprintln!("  options: {}", listed.join(", "));
        }
        let value = prompt::ask(label, None)?;
        values.push(json!({"name": name, "value": value}));
    }
    Ok(values)
}

/// Streams a build's log until it ends; a build that did not succeed is an error naming why.
/// `doing` says what, for the spinner on a terminal ("Starting workspace dev").
async fn follow_build(client: &ApiClient, build_id: &str, doing: &str) -> anyhow::Result<Value> {
    if build_id.is_empty() {
        bail!("the server answered without a build");
    }
    let progress = Progress::start(doing);
    client
        .follow_lines(
            &format!("/api/v2/workspacebuilds/{build_id}/logs?follow=true"),
            |line| progress.line(&log_text(&line)),
        )
        .await?;
    // The stream ends with the build, or when the server stops following; wait for the job.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let build: Value = client
            .get(&format!("/api/v2/workspacebuilds/{build_id}"))
            .await?;
        let job = build.get("job").cloned().unwrap_or(Value::Null);
        match text(&job, "status") {
            "succeeded" => return Ok(build),
            "pending" | "running" | "canceling" if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            "pending" | "running" | "canceling" => bail!("the build did not finish in time"),
            status => bail!(
                "the {} build {status}: {}",
                text(&build, "transition"),
                one_line(text(&job, "error"))
            ),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListCommand {
    /// Every workspace you may see, not only yours.
    #[arg(short, long)]
    all: bool,

    /// A Coder search query, e.g. `owner:me status:running`.
    #[arg(long, default_value = "owner:me")]
    search: String,

    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,

    #[command(flatten)]
    client: ClientArgs,
}

impl ListCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let query = if self.all { "" } else { self.search.as_str() };
        let path = format!(
            "/api/v2/workspaces?q={}",
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let page: Value = client.get(&path).await?;
        let workspaces = page
            .get("workspaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match self.output {
            OutputFormat::Json => println!("{}", output::json(&workspaces)?),
            OutputFormat::Table => {
                if workspaces.is_empty() {
                    eprintln!(
                        "No workspaces found; create one with `coder create <name> --template <template>`."
                    );
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = workspaces.iter().map(list_row).collect();
                print!(
                    "{}",
                    output::table(
                        &[
                            "workspace",
                            "template",
                            "status",
                            "healthy",
                            "last built",
                            "outdated"
                        ],
                        &rows
                    )
                );
            }
        }
        Ok(())
    }
}

fn list_row(w: &Value) -> Vec<String> {
    let build = w.get("latest_build").cloned().unwrap_or(Value::Null);
    let healthy = w
        .get("health")
        .and_then(|h| h.get("healthy"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let outdated = w.get("outdated").and_then(Value::as_bool).unwrap_or(false);
    vec![
        format!("{}/{}", text(w, "owner_name"), text(w, "name")),
        text(w, "template_name").to_owned(),
        status_label(text(&build, "status")),
        healthy.to_string(),
        output::timestamp(Some(text(&build, "created_at"))),
        outdated.to_string(),
    ]
}

/// Coder's CLI shows statuses capitalised ("Running", "Stopped").
fn status_label(status: &str) -> String {
    let mut chars = status.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Debug, Args)]
pub struct ShowCommand {
    /// The workspace, `[owner/]name`.
    workspace: String,

    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,

    #[command(flatten)]
    client: ClientArgs,
}

impl ShowCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let w = workspace_by_name(&client, &self.workspace).await?;
        if self.output == OutputFormat::Json {
            println!("{}", output::json(&w)?);
            return Ok(());
        }
        let build = w.get("latest_build").cloned().unwrap_or(Value::Null);
        print!(
            "{}",
            output::table(
                &["workspace", "template", "status", "build", "outdated"],
                &[list_row(&w)
                    .into_iter()
                    .take(3)
                    .chain([
                        format!(
                            "#{}",
                            build
                                .get("build_number")
                                .and_then(Value::as_i64)
                                .unwrap_or(0)
                        ),
                        w.get("outdated")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string(),
                    ])
                    .collect()],
            )
        );
        let mut rows = Vec::new();
        for resource in build
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for agent in resource
                .get("agents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let apps: Vec<String> = agent
                    .get("apps")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|a| format!("{} {}", text(a, "slug"), text(a, "url")))
                    .collect();
                rows.push(vec![
                    format!("{}.{}", text(resource, "name"), text(agent, "name")),
                    text(agent, "status").to_owned(),
                    text(agent, "lifecycle_state").to_owned(),
                    apps.join(", "),
                ]);
            }
        }
        if !rows.is_empty() {
            println!();
            print!(
                "{}",
                output::table(&["resource", "status", "lifecycle", "apps"], &rows)
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Delete,
}

#[derive(Debug, Args)]
pub struct BuildCommand {
    /// The workspace, `[owner/]name`.
    workspace: String,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,

    #[command(flatten)]
    client: ClientArgs,
}

impl BuildCommand {
    pub async fn run(self, action: Action) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let w = workspace_by_name(&client, &self.workspace).await?;
        let name = text(&w, "name").to_owned();
        let confirm = |what: &str| -> anyhow::Result<()> {
            if self.yes {
                Ok(())
            } else {
                prompt::confirm(&format!("{what} workspace {name:?}?"))
            }
        };
        match action {
            Action::Start => {
                build(&client, &w, "start").await?;
                println!("The {name} workspace has been started.");
            }
            Action::Stop => {
                confirm("Stop")?;
                build(&client, &w, "stop").await?;
                println!("The {name} workspace has been stopped.");
            }
            Action::Restart => {
                confirm("Restart")?;
                build(&client, &w, "stop").await?;
                build(&client, &w, "start").await?;
                println!("The {name} workspace has been restarted.");
            }
            Action::Delete => {
                confirm("Delete")?;
                build(&client, &w, "delete").await?;
                println!("The {name} workspace has been deleted.");
            }
        }
        Ok(())
    }
}

async fn build(client: &ApiClient, workspace: &Value, transition: &str) -> anyhow::Result<Value> {
    let created: Value = client
        .post(
            &format!("/api/v2/workspaces/{}/builds", text(workspace, "id")),
            &json!({"transition": transition}),
        )
        .await
        .with_context(|| format!("cannot {transition} the workspace"))?;
    let doing = match transition {
        "start" => "Starting",
        "stop" => "Stopping",
        _ => "Deleting",
    };
    let doing = format!("{doing} workspace {}", text(workspace, "name"));
    follow_build(client, text(&created, "id"), &doing).await
}

#[derive(Debug, Args)]
pub struct LogsCommand {
    /// The workspace, `[owner/]name`.
    workspace: String,

    /// Which build [default: the latest].
    #[arg(short = 'n', long = "build-number")]
    build_number: Option<i64>,

    /// Keep printing until the build ends.
    #[arg(short, long)]
    follow: bool,

    #[command(flatten)]
    client: ClientArgs,
}

impl LogsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let w = workspace_by_name(&client, &self.workspace).await?;
        let build = match self.build_number {
            None => w.get("latest_build").cloned().unwrap_or(Value::Null),
            Some(n) => {
                let builds: Vec<Value> = client
                    .get(&format!("/api/v2/workspaces/{}/builds", text(&w, "id")))
                    .await?;
                builds
                    .into_iter()
                    .find(|b| b.get("build_number").and_then(Value::as_i64) == Some(n))
                    .with_context(|| format!("workspace {:?} has no build #{n}", self.workspace))?
            }
        };
        let id = text(&build, "id");
        if self.follow {
            client
                .follow_lines(
                    &format!("/api/v2/workspacebuilds/{id}/logs?follow=true"),
                    |line| println!("{}", log_text(&line)),
                )
                .await?;
        } else {
            let logs: Vec<Value> = client
                .get(&format!("/api/v2/workspacebuilds/{id}/logs"))
                .await?;
            for line in &logs {
                println!("{}", log_text(line));
            }
        }
        Ok(())
    }
}
