//! `coder tokens create|list|remove`: API tokens for scripts and agents.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiClient, ClientArgs, api_status};
use super::output::{self, OutputFormat};
use super::users::path_segment;

#[derive(Debug, Args)]
pub struct TokensCommand {
    #[command(subcommand)]
    sub: TokensSubcommand,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum TokensSubcommand {
    /// Create a token and print it (it is shown only once).
    Create(CreateToken),
    /// List your tokens.
    #[command(alias = "ls")]
    List(ListTokens),
    /// Delete a token by name or ID.
    #[command(aliases = ["rm", "delete"])]
    Remove(RemoveToken),
}

#[derive(Debug, Args)]
struct CreateToken {
    /// A name to recognise it by (letters, digits, - and _) [default: cli-<random>].
    #[arg(long, short)]
    name: Option<String>,

    /// How long it is valid, e.g. 168h, 30d or 1h30m [default: the server's default].
    #[arg(long, short, value_parser = parse_lifetime)]
    lifetime: Option<Duration>,
}

#[derive(Debug, Args)]
struct ListTokens {
    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct RemoveToken {
    /// The token's name or ID.
    #[arg(value_name = "NAME|ID")]
    target: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    key: String,
}

const TOKENS: &str = "/api/v2/users/me/keys/tokens";

impl TokensCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        match self.sub {
            TokensSubcommand::Create(cmd) => create(&client, cmd).await,
            TokensSubcommand::List(cmd) => list(&client, cmd).await,
            TokensSubcommand::Remove(cmd) => remove(&client, cmd).await,
        }
    }
}

async fn create(client: &ApiClient, cmd: CreateToken) -> anyhow::Result<()> {
    let name = match cmd.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    };
    // Go encodes `time.Duration` as nanoseconds; 0 asks for the server's default.
    let lifetime = match cmd.lifetime {
        Some(d) => i64::try_from(d.as_nanos()).context("the lifetime is too long")?,
        None => 0,
    };
    let created: Created = client
        .post(TOKENS, &json!({ "token_name": name, "lifetime": lifetime }))
        .await
        .context("cannot create the token")?;
    println!("{}", created.key);
    Ok(())
}

async fn list(client: &ApiClient, cmd: ListTokens) -> anyhow::Result<()> {
    let tokens: Vec<Value> = client.get(TOKENS).await?;
    match cmd.output {
        OutputFormat::Json => println!("{}", output::json(&tokens)?),
        OutputFormat::Table => {
            if tokens.is_empty() {
                eprintln!("No tokens found; create one with `coder tokens create --name <name>`.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    let text = |k: &str| t.get(k).and_then(Value::as_str);
                    vec![
                        text("id").unwrap_or_default().to_owned(),
                        text("token_name").unwrap_or_default().to_owned(),
                        output::timestamp(text("last_used")),
                        output::timestamp(text("expires_at")),
                        output::timestamp(text("created_at")),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["id", "name", "last used", "expires at", "created at"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// A name is looked up among the caller's tokens first; anything else is taken as an ID.
async fn remove(client: &ApiClient, cmd: RemoveToken) -> anyhow::Result<()> {
    let wanted = cmd.target.trim();
    let tokens: Vec<Value> = client.get(TOKENS).await?;
    let id = tokens
        .iter()
        .find(|t| t.get("token_name").and_then(Value::as_str) == Some(wanted))
        .and_then(|t| t.get("id").and_then(Value::as_str))
        .unwrap_or(wanted)
        .to_owned();
    client
        .delete(&format!("/api/v2/users/me/keys/{}", path_segment(&id)))
        .await
        .map_err(|e| {
            if api_status(&e) == Some(StatusCode::NOT_FOUND) {
                anyhow::anyhow!(
                    "you have no token named or with the ID {wanted:?}; `coder tokens list` shows them"
                )
            } else {
                e
            }
        })?;
    println!("Token has been deleted.");
    Ok(())
}

/// Go durations (`168h`, `1h30m`) plus Coder's day and year units (`30d`, `1y`).
fn parse_lifetime(raw: &str) -> anyhow::Result<Duration> {
    let s = raw.trim();
    let mut total = Duration::ZERO;
    let mut rest = s;
    // Leading `<n>y` and `<n>d` components, then whatever Go's parser takes.
    for (unit, seconds) in [('y', 365 * 86_400u64), ('d', 86_400)] {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        if digits > 0 && rest[digits..].starts_with(unit) {
            let n: u64 = rest[..digits].parse().context("bad number")?;
            total += Duration::from_secs(n.saturating_mul(seconds));
            rest = &rest[digits + 1..];
        }
    }
    if !rest.is_empty() {
        total += crate::config::parse_duration(rest)?;
    }
    if total.is_zero() {
        bail!("the lifetime must be longer than zero, e.g. 168h or 30d");
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_lifetime;
    use std::time::Duration;

    #[test]
    fn lifetimes_take_go_durations_days_and_years() {
        assert_eq!(
            parse_lifetime("168h").unwrap(),
            Duration::from_secs(168 * 3600)
        );
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_lifetime("1d12h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            parse_lifetime("1y").unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("soon").is_err());
        assert!(parse_lifetime("").is_err());
    }
}
