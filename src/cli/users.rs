//! `coder whoami` and `coder users show <user>`: who the stored identity is.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::{ClientArgs, display_url};
use super::output::{self, OutputFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum WhoamiFormat {
    #[default]
    Text,
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct WhoamiCommand {
    /// text (one sentence), table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: WhoamiFormat,

    #[command(flatten)]
    client: ClientArgs,
}

impl WhoamiCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let me: Value = client.get("/api/v2/users/me").await?;
        let url = display_url(client.base());
        let text = |k: &str| me.get(k).and_then(Value::as_str).unwrap_or_default();
        match self.output {
            WhoamiFormat::Text => {
                println!(
                    "Coder is running at {url}, You're authenticated as {} !",
                    text("username")
                );
            }
            WhoamiFormat::Table => print!(
                "{}",
                output::table(
                    &["url", "username", "email", "id", "roles"],
                    &[vec![
                        url,
                        text("username").to_owned(),
                        text("email").to_owned(),
                        text("id").to_owned(),
                        roles(&me),
                    ]],
                )
            ),
            WhoamiFormat::Json => println!(
                "{}",
                output::json(&json!({
                    "url": url,
                    "id": me.get("id"),
                    "username": me.get("username"),
                    "email": me.get("email"),
                    "roles": me.get("roles"),
                }))?
            ),
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct UsersCommand {
    #[command(subcommand)]
    sub: UsersSubcommand,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum UsersSubcommand {
    /// Show a user: `me`, a username or an ID.
    Show(ShowUser),
}

#[derive(Debug, Args)]
struct ShowUser {
    #[arg(value_name = "USER")]
    user: String,

    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

impl UsersCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let UsersSubcommand::Show(show) = self.sub;
        let client = self.client.authenticated()?;
        let user: Value = client
            .get(&format!("/api/v2/users/{}", path_segment(&show.user)))
            .await?;
        match show.output {
            OutputFormat::Json => println!("{}", output::json(&user)?),
            OutputFormat::Table => {
                let text = |k: &str| {
                    user.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                print!(
                    "{}",
                    output::table(
                        &["username", "email", "name", "status", "roles", "created at"],
                        &[vec![
                            text("username"),
                            text("email"),
                            text("name"),
                            text("status"),
                            roles(&user),
                            output::timestamp(user.get("created_at").and_then(Value::as_str)),
                        ]],
                    )
                );
            }
        }
        Ok(())
    }
}

/// Site roles by name; a user without granted roles is a member.
fn roles(user: &Value) -> String {
    let names: Vec<&str> = user
        .get("roles")
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "member".to_owned()
    } else {
        names.join(",")
    }
}

/// One URL path segment, percent-encoded.
pub fn path_segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
