//! `coder audit list`: the deployment's audit log (owners only).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::ClientArgs;
use super::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct AuditCommand {
    #[command(subcommand)]
    sub: AuditSubcommand,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum AuditSubcommand {
    /// List audit log entries, newest first.
    #[command(alias = "ls")]
    List(ListAudit),
}

#[derive(Debug, Args)]
struct ListAudit {
    /// A search, as in Coder: username:, email:, action:, resource_type:, resource_id:,
    /// date_from: and date_to: (2026-01-31), e.g. "username:alice action:mcp.tool.call".
    #[arg(long, short, default_value = "")]
    query: String,

    /// How many entries to show (1-1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,

    /// How many of the newest matching entries to skip.
    #[arg(long, default_value_t = 0)]
    offset: u64,

    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

impl AuditCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        match self.sub {
            AuditSubcommand::List(cmd) => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("q", &cmd.query)
                    .append_pair("limit", &cmd.limit.to_string())
                    .append_pair("offset", &cmd.offset.to_string())
                    .finish();
                let page: Value = client.get(&format!("/api/v2/audit?{query}")).await?;
                print_page(&page, cmd.output)
            }
        }
    }
}

fn print_page(page: &Value, format: OutputFormat) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        println!("{}", output::json(page)?);
        return Ok(());
    }
    let entries = page["audit_logs"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        eprintln!("No audit log entries match.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let user = e["user"]["username"].as_str().unwrap_or("-").to_owned();
            let target = match text("resource_target") {
                t if t.is_empty() => text("resource_id"),
                t => t,
            };
            vec![
                output::timestamp(e["time"].as_str()),
                user,
                text("action"),
                format!("{} {target}", text("resource_type")),
                text("ip"),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(&["time", "user", "action", "resource", "ip"], &rows)
    );
    let count = page["count"].as_i64().unwrap_or_default();
    if count > entries.len() as i64 {
        eprintln!(
            "Showing {} of {count} entries; use --offset and --limit for more.",
            entries.len()
        );
    }
    Ok(())
}
