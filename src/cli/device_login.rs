//! `coder login --device`: signing in without a password through the OAuth2 device flow
//! (RFC 8628), as the server's built-in Coder CLI client. The user approves a short code in a
//! browser where they are signed in; the server then hands the CLI an API session.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Deserialize;

use super::client::{ApiClient, display_url, http_client, unreachable};
use crate::domain::{CLI_CLIENT_ID, DEVICE_CODE_GRANT};

/// One request to the server; polling itself may last as long as the code lives.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// RFC 8628 §3.2: the interval when the server names none.
const DEFAULT_INTERVAL_SECS: u64 = 5;
/// RFC 8628 §3.5: what each `slow_down` adds to the interval.
const SLOW_DOWN_SECS: u64 = 5;

/// RFC 8628 §3.2.
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// RFC 6749 §5.1; the CLI client's access token is an API session.
#[derive(Deserialize)]
struct Token {
    access_token: String,
}

/// RFC 6749 §5.2.
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

impl OAuthErrorBody {
    fn describe(&self) -> String {
        match &self.error_description {
            Some(d) if !d.trim().is_empty() => format!("{} ({})", self.error, d.trim()),
            _ => self.error.clone(),
        }
    }
}

/// Runs the device flow against `server` and returns the session token. Nothing is opened on
/// this machine: the user may approve from any browser, which is the point of the flow.
pub async fn run(server: &ApiClient) -> anyhow::Result<String> {
    let http = http_client()?;
    let shown = display_url(server.base());
    let client_id = CLI_CLIENT_ID.to_string();
    let (status, body) = post_form(
        &http,
        server,
        "/oauth2/device",
        &[("client_id", client_id.as_str())],
    )
    .await?;
    if status == StatusCode::NOT_FOUND {
        bail!(
            "the server at {shown} does not have its OAuth2 provider enabled, which `coder login --device` needs: start it with --oauth2-provider-enable (CODER_OAUTH2_PROVIDER_ENABLE=true) or --experiments=oauth2, or sign in with a password"
        );
    }
    if !status.is_success() {
        bail!(
            "the server at {shown} refused to start a device login: {}",
            oauth_error(&body, status)
        );
    }
    let started: DeviceAuthorization = serde_json::from_slice(&body).with_context(|| {
        format!(
            "the server at {shown} answered /oauth2/device with something other than a device code"
        )
    })?;
    println!(
        "To sign in, open {} in a browser where you are signed in to Coder and enter the code {}",
        started.verification_uri, started.user_code
    );
    if let Some(complete) = &started.verification_uri_complete {
        println!("(or open {complete})");
    }
    println!("Waiting for approval...");

    let mut interval = started.interval.unwrap_or(DEFAULT_INTERVAL_SECS).max(1);
    let expires = Instant::now() + Duration::from_secs(started.expires_in);
    let expired = || {
        anyhow::anyhow!(
            "the code {} expired before it was approved; run `coder login --device` again",
            started.user_code
        )
    };
    loop {
        // RFC 8628 §3.5: wait the interval before every poll, the first included.
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if Instant::now() >= expires {
            return Err(expired());
        }
        let (status, body) = post_form(
            &http,
            server,
            "/oauth2/tokens",
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", started.device_code.as_str()),
                ("client_id", client_id.as_str()),
            ],
        )
        .await?;
        if status.is_success() {
            let token: Token = serde_json::from_slice(&body).with_context(|| {
                format!("the server at {shown} answered /oauth2/tokens with something other than a token")
            })?;
            return Ok(token.access_token);
        }
        match serde_json::from_slice::<OAuthErrorBody>(&body) {
            Ok(e) if e.error == "authorization_pending" => {}
            Ok(e) if e.error == "slow_down" => interval += SLOW_DOWN_SECS,
            Ok(e) if e.error == "access_denied" => {
                bail!("the login was denied in the browser; nothing was stored")
            }
            Ok(e) if e.error == "expired_token" => return Err(expired()),
            _ => bail!(
                "the server at {shown} refused the device login: {}",
                oauth_error(&body, status)
            ),
        }
    }
}

/// Posts a form; an unreachable server is an error, any HTTP answer is returned.
async fn post_form(
    http: &reqwest::Client,
    server: &ApiClient,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(StatusCode, Vec<u8>)> {
    let response = http
        .post(server.url(path))
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| unreachable(server.base(), &e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(server.base(), &e))?;
    Ok((status, body.to_vec()))
}

/// An RFC 6749 §5.2 error as one phrase, or the status when the body is not one.
fn oauth_error(body: &[u8], status: StatusCode) -> String {
    serde_json::from_slice::<OAuthErrorBody>(body)
        .map(|e| e.describe())
        .unwrap_or_else(|_| format!("HTTP {status}"))
}
