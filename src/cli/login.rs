//! `coder login` and `coder logout`: sign in to a server and keep the session in the config dir.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiClient, ClientArgs, api_status, display_url, non_empty, parse_server_url};

#[derive(Args)]
pub struct LoginCommand {
    /// The server to sign in to, e.g. https://coder.example.com [default: --url, CODER_URL or
    /// the stored URL].
    #[arg(value_name = "URL")]
    server: Option<String>,

    /// Sign in with a password (prompted for when absent).
    #[arg(long, env = "CODER_EMAIL")]
    email: Option<String>,

    /// The password, for scripts; prefer the prompt or the first line of stdin.
    #[arg(long, env = "CODER_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Sign in without a password: print a code to approve in a browser where you are signed in
    /// (the OAuth2 device flow, RFC 8628). Needs the server's OAuth2 provider enabled.
    #[arg(long, conflicts_with_all = ["email", "password"])]
    device: bool,

    #[command(flatten)]
    client: ClientArgs,
}

impl std::fmt::Debug for LoginCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCommand")
            .field("server", &self.server)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("device", &self.device)
            .field("client", &self.client)
            .finish()
    }
}

#[derive(Deserialize)]
struct LoginResponse {
    session_token: String,
}

/// The fields of `codersdk.User` the CLI shows.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub username: String,
}

impl LoginCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let dir = self.client.config_dir()?;
        let url = match non_empty(self.server.as_deref()) {
            Some(raw) => parse_server_url(raw)?,
            None => self.client.server_url()?.context(
                "which server? run `coder login <url>`, e.g. `coder login https://coder.example.com`",
            )?,
        };
        let anonymous = ApiClient::new(url.clone(), None)?;
        // A Coder server answers buildinfo without a session: proof the URL is right before any
        // password is typed.
        let build: Value = anonymous.get("/api/v2/buildinfo").await?;
        if build.get("version").and_then(Value::as_str).is_none() {
            bail!(
                "{} answered /api/v2/buildinfo without a version; is it the URL of a Coder server?",
                display_url(&url)
            );
        }

        let token = match non_empty(self.client.token.as_deref()) {
            Some(token) => token.to_owned(),
            None if self.device => super::device_login::run(&anonymous).await?,
            None => self.password_login(&anonymous).await?,
        };
        let client = ApiClient::new(url.clone(), Some(token.clone()))?;
        let me: Me = client.get("/api/v2/users/me").await.map_err(|e| {
            if api_status(&e) == Some(StatusCode::UNAUTHORIZED) {
                anyhow::anyhow!(
                    "the server at {} does not accept this token (it is unknown, expired or deleted): create a new one, or sign in with your email and password",
                    display_url(&url)
                )
            } else {
                e
            }
        })?;
        dir.write_url(&display_url(&url))?;
        dir.write_session(&token)?;
        println!("Welcome to Coder, {}! You're authenticated.", me.username);
        eprintln!(
            "The session is stored in {}; `coder logout` ends it.",
            dir.path().display()
        );
        Ok(())
    }

    async fn password_login(&self, client: &ApiClient) -> anyhow::Result<String> {
        let email = match non_empty(self.email.as_deref()) {
            Some(e) => e.to_owned(),
            None => prompt_email()?,
        };
        let password = match self.password.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => p.to_owned(),
            None => super::password::read_password()?,
        };
        let signed_in = client
            .post::<_, LoginResponse>(
                "/api/v2/users/login",
                &json!({ "email": email, "password": password }),
            )
            .await;
        match signed_in {
            Ok(response) => Ok(response.session_token),
            Err(e) if api_status(&e) == Some(StatusCode::UNAUTHORIZED) => {
                // On a fresh server no password can be right yet: say how to create the owner.
                let first = client.get::<Value>("/api/v2/users/first").await;
                if first.as_ref().err().and_then(api_status) == Some(StatusCode::NOT_FOUND) {
                    bail!(
                        "{} has no users yet: create the first one at {}/setup (or with `coder server create-admin-user`), then log in",
                        display_url(client.base()),
                        display_url(client.base())
                    );
                }
                bail!("incorrect email or password for {email}")
            }
            Err(e) => Err(e.context("cannot sign in")),
        }
    }
}

fn prompt_email() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no credentials: pass --email and --password, or --token (or CODER_SESSION_TOKEN) with an API token"
        );
    }
    eprint!("Email: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the email")?;
    let email = line.trim().to_owned();
    if email.is_empty() {
        bail!("no email given");
    }
    Ok(email)
}

#[derive(Debug, Args)]
pub struct LogoutCommand {
    #[command(flatten)]
    client: ClientArgs,
}

impl LogoutCommand {
    /// Ends the session on the server, then forgets it locally even if the server could not be
    /// told (an unreachable server must not leave the user stuck signed in).
    pub async fn run(self) -> anyhow::Result<()> {
        let dir = self.client.config_dir()?;
        let (Some(url), Some(token)) = (dir.url()?, dir.session()?) else {
            dir.clear()?;
            println!("You are not logged in.");
            return Ok(());
        };
        let client = ApiClient::new(parse_server_url(&url)?, Some(token))?;
        let ended = client
            .post::<_, Value>("/api/v2/users/logout", &json!({}))
            .await;
        dir.clear()?;
        match ended {
            Ok(_) => {}
            // The session was already gone on the server: nothing left to end.
            Err(e) if api_status(&e) == Some(StatusCode::UNAUTHORIZED) => {}
            Err(e) => eprintln!(
                "warning: the server was not told ({e:#}); the session stays valid there until it expires"
            ),
        }
        println!("You are no longer logged in. You can log in using 'coder login <url>'.");
        Ok(())
    }
}
