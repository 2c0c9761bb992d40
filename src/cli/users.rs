//! `coder whoami` and `coder users show <user>`: who the stored identity is; `coder users
//! list|create|suspend|activate` for owners.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use anyhow::Context;

use super::client::{ApiClient, ClientArgs, display_url};
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
    /// List users.
    #[command(alias = "ls")]
    List(ListUsers),
    /// Create a user (owners only).
    Create(CreateUser),
    /// Suspend a user: they can no longer sign in or use their tokens (owners only).
    Suspend(ChangeStatus),
    /// Activate a suspended user again (owners only).
    Activate(ChangeStatus),
}

#[derive(Debug, Args)]
struct ChangeStatus {
    /// A username or an ID.
    #[arg(value_name = "USER")]
    user: String,
}

#[derive(Debug, Args)]
struct ListUsers {
    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct CreateUser {
    /// The new user's email address.
    #[arg(short, long)]
    email: String,

    /// The new user's username.
    #[arg(short, long)]
    username: String,

    /// The new user's full name.
    #[arg(short = 'n', long = "full-name", default_value = "")]
    full_name: String,

    /// Their password [default: a random one, printed once].
    #[arg(short, long, env = "CODER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
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
        let client = self.client.authenticated()?;
        let show = match self.sub {
            UsersSubcommand::Show(show) => show,
            UsersSubcommand::List(cmd) => return list_users(&client, cmd).await,
            UsersSubcommand::Create(cmd) => return create_user(&client, cmd).await,
            UsersSubcommand::Suspend(cmd) => {
                return change_status(&client, &cmd.user, "suspend", "suspended").await;
            }
            UsersSubcommand::Activate(cmd) => {
                return change_status(&client, &cmd.user, "activate", "activated").await;
            }
        };
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

async fn list_users(client: &ApiClient, cmd: ListUsers) -> anyhow::Result<()> {
    let page: Value = client.get("/api/v2/users?limit=1000").await?;
    let users = page
        .get("users")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match cmd.output {
        OutputFormat::Json => println!("{}", output::json(&users)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let text = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
                    vec![
                        text("username").to_owned(),
                        text("email").to_owned(),
                        output::timestamp(Some(text("created_at"))),
                        text("status").to_owned(),
                        roles(u),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["username", "email", "created at", "status", "roles"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

async fn create_user(client: &ApiClient, cmd: CreateUser) -> anyhow::Result<()> {
    let (password, generated) = match cmd.password.filter(|p| !p.is_empty()) {
        Some(p) => (p, false),
        None => (random_password(), true),
    };
    let user: Value = client
        .post(
            "/api/v2/users",
            &json!({
                "email": cmd.email,
                "username": cmd.username,
                "name": cmd.full_name,
                "password": password,
            }),
        )
        .await
        .context("cannot create the user")?;
    let username = user
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    println!("Created user {username:?} ({}).", cmd.email);
    if generated {
        println!("Their password (shown only now): {password}");
    }
    Ok(())
}

async fn change_status(
    client: &ApiClient,
    user: &str,
    action: &str,
    done: &str,
) -> anyhow::Result<()> {
    let path = format!("/api/v2/users/{}/status/{action}", path_segment(user));
    let changed: Value = client
        .put_without_body(&path)
        .await
        .with_context(|| format!("cannot {action} the user"))?;
    let username = changed
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or(user);
    println!("User {username} has been {done}.");
    Ok(())
}

/// 24 alphanumeric characters from the OS's random source.
fn random_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
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
