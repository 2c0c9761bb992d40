//! Server configuration: flags, `CODER_*` environment variables and an optional YAML or TOML file,
//! layered flag > env > file > default, then validated into a `ServerConfig`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use url::Url;

use crate::domain::provisioner::WorkspaceLimits;
use crate::domain::{Experiment, Experiments};
use crate::store::DatabaseTarget;

/// Every `coder server` option. Each is `Option` so that the layers can be told apart.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServerOptions {
    /// Address to serve HTTP on [default: 127.0.0.1:3000].
    #[arg(long, env = "CODER_HTTP_ADDRESS")]
    pub http_address: Option<String>,

    /// The URL users and clients reach this server at; the OAuth issuer and MCP resource derive
    /// from it [default: http://<http-address>, or https://<tls-address> with --tls-enable].
    #[arg(long, env = "CODER_ACCESS_URL")]
    pub access_url: Option<String>,

    /// Experiments to enable, comma-separated: oauth2, mcp-server-http, or * for all.
    #[arg(long, env = "CODER_EXPERIMENTS", value_delimiter = ',')]
    pub experiments: Option<Vec<String>>,

    /// Turn on the OAuth2 authorization server (Coder's graduated flag); the same as
    /// `--experiments=oauth2`, which is still accepted.
    #[arg(long, env = "CODER_OAUTH2_PROVIDER_ENABLE", num_args = 0..=1, default_missing_value = "true")]
    pub oauth2_provider_enable: Option<bool>,

    /// Accept Client ID Metadata Documents: an https URL as client_id, whose metadata the server
    /// fetches (on by default with the authorization server; owners can also turn it off).
    #[arg(long, env = "CODER_OAUTH2_CLIENT_ID_METADATA_DOCUMENT_ENABLE", num_args = 0..=1, default_missing_value = "true")]
    pub oauth2_client_id_metadata_document_enable: Option<bool>,

    /// PostgreSQL connection URL; without it the embedded SQLite database in --data-dir is used.
    #[arg(long, env = "CODER_PG_CONNECTION_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,

    /// Directory for the SQLite database and workspace data [default: ~/.config/coderv2].
    #[arg(long, env = "CODER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log format: human or json [default: human].
    #[arg(long, env = "CODER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log debug messages too.
    #[arg(long, env = "CODER_VERBOSE", num_args = 0..=1, default_missing_value = "true")]
    pub verbose: Option<bool>,

    /// How long a browser session lasts, e.g. 24h [default: 24h].
    #[arg(long, env = "CODER_SESSION_DURATION")]
    pub session_duration: Option<String>,

    /// Lifetime of an API token created without one [default: 168h].
    #[arg(long, env = "CODER_DEFAULT_TOKEN_LIFETIME")]
    pub default_token_lifetime: Option<String>,

    /// The longest lifetime an API token may ask for [default: 8760h].
    #[arg(long, env = "CODER_MAX_TOKEN_LIFETIME")]
    pub max_token_lifetime: Option<String>,

    /// Sign-in attempts allowed per client IP per minute [default: 30].
    #[arg(long, env = "CODER_LOGIN_RATE_LIMIT")]
    pub login_rate_limit: Option<u32>,

    /// Headers that carry the client IP when the request comes from a trusted proxy, e.g.
    /// X-Forwarded-For.
    #[arg(long, env = "CODER_PROXY_TRUSTED_HEADERS", value_delimiter = ',')]
    pub proxy_trusted_headers: Option<Vec<String>>,

    /// Proxy addresses (IPs or CIDRs) whose client-IP headers are believed.
    #[arg(long, env = "CODER_PROXY_TRUSTED_ORIGINS", value_delimiter = ',')]
    pub proxy_trusted_origins: Option<Vec<String>>,

    /// Lifetime of OAuth2 access tokens [default: 1h].
    #[arg(long, env = "CODER_OAUTH2_ACCESS_TOKEN_LIFETIME")]
    pub oauth2_access_token_lifetime: Option<String>,

    /// Lifetime of OAuth2 refresh tokens; each refresh issues a new one [default: 720h].
    #[arg(long, env = "CODER_OAUTH2_REFRESH_TOKEN_LIFETIME")]
    pub oauth2_refresh_token_lifetime: Option<String>,

    /// Requests per minute per client IP to each OAuth2 endpoint [default: 300].
    #[arg(long, env = "CODER_OAUTH2_RATE_LIMIT")]
    pub oauth2_rate_limit: Option<u32>,

    /// Requests per minute per OAuth2 client to each OAuth2 endpoint [default: 120].
    #[arg(long, env = "CODER_OAUTH2_CLIENT_RATE_LIMIT")]
    pub oauth2_client_rate_limit: Option<u32>,

    /// Dynamically registered clients that never obtain a token are deleted after this [default: 24h].
    #[arg(long, env = "CODER_OAUTH2_DYNAMIC_CLIENT_TTL")]
    pub oauth2_dynamic_client_ttl: Option<String>,

    /// Browser origins besides the access URL's that may call the MCP endpoint, e.g.
    /// http://localhost:6274 for the MCP Inspector.
    #[arg(long, env = "CODER_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub mcp_allowed_origins: Option<Vec<String>>,

    /// MCP requests worked on at once; more wait their turn. Calls that wait on a workspace
    /// (commands, files, readiness) do not count [default: 32 per core].
    #[arg(long, env = "CODER_MCP_MAX_CONCURRENT_REQUESTS")]
    pub mcp_max_concurrent_requests: Option<u32>,

    /// The longest a workspace command may run before it is killed [default: 5m].
    #[arg(long, env = "CODER_MAX_COMMAND_TIMEOUT")]
    pub max_command_timeout: Option<String>,

    /// Run workspaces without the bubblewrap sandbox when it is unavailable. Workspace commands
    /// then run as the server's user and can read its database: for trusted single-user setups only.
    #[arg(long, env = "CODER_ALLOW_UNSANDBOXED_WORKSPACES", num_args = 0..=1, default_missing_value = "true")]
    pub allow_unsandboxed_workspaces: Option<bool>,

    /// The URL other replicas reach this one at, to relay requests for the workspace agents
    /// connected here (Coder's flag); needed with several replicas on one PostgreSQL
    /// [default: http://<http-address>].
    #[arg(long, env = "CODER_DERP_SERVER_RELAY_URL")]
    pub derp_server_relay_url: Option<String>,

    /// Host uids that workspaces run as when the server runs as root, one per workspace
    /// [default: 1000000000-1000065535].
    #[arg(long, env = "CODER_WORKSPACE_UID_RANGE")]
    pub workspace_uid_range: Option<String>,

    /// The most processes (and threads) one workspace may run; 0 for no limit [default: 4096].
    #[arg(long, env = "CODER_WORKSPACE_MAX_PROCESSES")]
    pub workspace_max_processes: Option<u64>,

    /// The memory one workspace may use, e.g. 4GiB or 512MiB; 0 for no limit [default: 4GiB].
    #[arg(long, env = "CODER_WORKSPACE_MEMORY_LIMIT")]
    pub workspace_memory_limit: Option<String>,

    /// The CPU one workspace may use, in cores, e.g. 1.5; 0 for no limit [default: 0].
    #[arg(long, env = "CODER_WORKSPACE_CPU_LIMIT")]
    pub workspace_cpu_limit: Option<f64>,

    /// The largest file a workspace process may write, e.g. 16GiB; 0 for no limit [default: 16GiB].
    #[arg(long, env = "CODER_WORKSPACE_MAX_FILE_SIZE")]
    pub workspace_max_file_size: Option<String>,

    /// The disk each workspace's home and /tmp live on, e.g. 10GiB (a sparse image, so it takes
    /// only what is used; needs a root server); 0 leaves them on the server's disk [default: 0].
    #[arg(long, env = "CODER_WORKSPACE_DISK_SIZE")]
    pub workspace_disk_size: Option<String>,

    /// Workspace networking: none (loopback only) or host (shares this host's network,
    /// including its loopback services; trusted setups only) [default: none].
    #[arg(long, env = "CODER_WORKSPACE_NETWORK")]
    pub workspace_network: Option<String>,

    /// The Docker engine container workspaces (`provisioner: docker`) run on, e.g.
    /// unix:///var/run/docker.sock [default: DOCKER_HOST, else that socket].
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,

    /// The `coder` binary workspace agents run from [default: this binary].
    #[arg(long, env = "CODER_AGENT_BINARY", hide = true)]
    pub agent_binary: Option<PathBuf>,

    /// Serve HTTPS on --tls-address with the --tls-cert-file/--tls-key-file pairs.
    #[arg(long, env = "CODER_TLS_ENABLE", num_args = 0..=1, default_missing_value = "true")]
    pub tls_enable: Option<bool>,

    /// Address to serve HTTPS on [default: 127.0.0.1:3443].
    #[arg(long, env = "CODER_TLS_ADDRESS")]
    pub tls_address: Option<String>,

    /// PEM certificate files, comma-separated or repeated; each chain starts with the server's
    /// certificate. The certificate whose names match the client's SNI is served, else the first.
    #[arg(long, env = "CODER_TLS_CERT_FILE", value_delimiter = ',')]
    pub tls_cert_file: Option<Vec<PathBuf>>,

    /// PEM private key files, one for each --tls-cert-file, in the same order.
    #[arg(long, env = "CODER_TLS_KEY_FILE", value_delimiter = ',')]
    pub tls_key_file: Option<Vec<PathBuf>>,

    /// Lowest TLS version accepted: tls12 or tls13 [default: tls12].
    #[arg(long, env = "CODER_TLS_MIN_VERSION")]
    pub tls_min_version: Option<String>,

    /// Redirect requests for another host than the access URL's there, and with --tls-enable
    /// plain HTTP to HTTPS; /healthz is always answered.
    #[arg(long, env = "CODER_REDIRECT_TO_ACCESS_URL", num_args = 0..=1, default_missing_value = "true")]
    pub redirect_to_access_url: Option<bool>,

    /// Send Strict-Transport-Security with this max-age in seconds on responses served over
    /// HTTPS; 0 sends none [default: 0].
    #[arg(long, env = "CODER_STRICT_TRANSPORT_SECURITY")]
    pub strict_transport_security: Option<u64>,

    /// Strict-Transport-Security options, comma-separated: includeSubDomains, preload.
    #[arg(
        long,
        env = "CODER_STRICT_TRANSPORT_SECURITY_OPTIONS",
        value_delimiter = ','
    )]
    pub strict_transport_security_options: Option<Vec<String>>,

    /// Serve Prometheus metrics at /metrics on --prometheus-address.
    #[arg(long, env = "CODER_PROMETHEUS_ENABLE", num_args = 0..=1, default_missing_value = "true")]
    pub prometheus_enable: Option<bool>,

    /// Address to serve the metrics on [default: 127.0.0.1:2112].
    #[arg(long, env = "CODER_PROMETHEUS_ADDRESS")]
    pub prometheus_address: Option<String>,

    /// How long audit log entries are kept, e.g. 8760h, 365d or 52w; 0 keeps them forever
    /// [default: 0].
    #[arg(long, env = "CODER_AUDIT_LOGS_RETENTION")]
    pub audit_logs_retention: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl ServerOptions {
    /// Fills every option this layer left unset from `lower`.
    pub fn or(self, lower: ServerOptions) -> ServerOptions {
        ServerOptions {
            http_address: self.http_address.or(lower.http_address),
            access_url: self.access_url.or(lower.access_url),
            experiments: self.experiments.or(lower.experiments),
            oauth2_provider_enable: self.oauth2_provider_enable.or(lower.oauth2_provider_enable),
            oauth2_client_id_metadata_document_enable: self
                .oauth2_client_id_metadata_document_enable
                .or(lower.oauth2_client_id_metadata_document_enable),
            postgres_url: self.postgres_url.or(lower.postgres_url),
            data_dir: self.data_dir.or(lower.data_dir),
            log_format: self.log_format.or(lower.log_format),
            verbose: self.verbose.or(lower.verbose),
            session_duration: self.session_duration.or(lower.session_duration),
            default_token_lifetime: self.default_token_lifetime.or(lower.default_token_lifetime),
            max_token_lifetime: self.max_token_lifetime.or(lower.max_token_lifetime),
            login_rate_limit: self.login_rate_limit.or(lower.login_rate_limit),
            proxy_trusted_headers: self.proxy_trusted_headers.or(lower.proxy_trusted_headers),
            proxy_trusted_origins: self.proxy_trusted_origins.or(lower.proxy_trusted_origins),
            oauth2_access_token_lifetime: self
                .oauth2_access_token_lifetime
                .or(lower.oauth2_access_token_lifetime),
            oauth2_refresh_token_lifetime: self
                .oauth2_refresh_token_lifetime
                .or(lower.oauth2_refresh_token_lifetime),
            oauth2_rate_limit: self.oauth2_rate_limit.or(lower.oauth2_rate_limit),
            oauth2_client_rate_limit: self
                .oauth2_client_rate_limit
                .or(lower.oauth2_client_rate_limit),
            oauth2_dynamic_client_ttl: self
                .oauth2_dynamic_client_ttl
                .or(lower.oauth2_dynamic_client_ttl),
            mcp_allowed_origins: self.mcp_allowed_origins.or(lower.mcp_allowed_origins),
            mcp_max_concurrent_requests: self
                .mcp_max_concurrent_requests
                .or(lower.mcp_max_concurrent_requests),
            max_command_timeout: self.max_command_timeout.or(lower.max_command_timeout),
            allow_unsandboxed_workspaces: self
                .allow_unsandboxed_workspaces
                .or(lower.allow_unsandboxed_workspaces),
            derp_server_relay_url: self.derp_server_relay_url.or(lower.derp_server_relay_url),
            workspace_uid_range: self.workspace_uid_range.or(lower.workspace_uid_range),
            workspace_max_processes: self
                .workspace_max_processes
                .or(lower.workspace_max_processes),
            workspace_memory_limit: self.workspace_memory_limit.or(lower.workspace_memory_limit),
            workspace_cpu_limit: self.workspace_cpu_limit.or(lower.workspace_cpu_limit),
            workspace_max_file_size: self
                .workspace_max_file_size
                .or(lower.workspace_max_file_size),
            workspace_disk_size: self.workspace_disk_size.or(lower.workspace_disk_size),
            workspace_network: self.workspace_network.or(lower.workspace_network),
            docker_host: self.docker_host.or(lower.docker_host),
            agent_binary: self.agent_binary.or(lower.agent_binary),
            tls_enable: self.tls_enable.or(lower.tls_enable),
            tls_address: self.tls_address.or(lower.tls_address),
            tls_cert_file: self.tls_cert_file.or(lower.tls_cert_file),
            tls_key_file: self.tls_key_file.or(lower.tls_key_file),
            tls_min_version: self.tls_min_version.or(lower.tls_min_version),
            redirect_to_access_url: self.redirect_to_access_url.or(lower.redirect_to_access_url),
            strict_transport_security: self
                .strict_transport_security
                .or(lower.strict_transport_security),
            strict_transport_security_options: self
                .strict_transport_security_options
                .or(lower.strict_transport_security_options),
            prometheus_enable: self.prometheus_enable.or(lower.prometheus_enable),
            prometheus_address: self.prometheus_address.or(lower.prometheus_address),
            audit_logs_retention: self.audit_logs_retention.or(lower.audit_logs_retention),
        }
    }

    /// Reads a config file; `.toml` is TOML, anything else YAML.
    pub fn from_file(path: &Path) -> anyhow::Result<ServerOptions> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(anyhow::Error::from)
        } else {
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!(e.to_string()))
        };
        parsed.with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// A proxy address or network whose forwarded client-IP headers are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNetwork {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The validated configuration the app runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub http_address: String,
    /// `None` until the listener is bound: then derived from the bound address.
    pub access_url: Option<Url>,
    pub experiments: Experiments,
    pub database: DatabaseTarget,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub verbose: bool,
    pub session_duration: Duration,
    pub default_token_lifetime: Duration,
    pub max_token_lifetime: Duration,
    pub login_rate_limit: u32,
    /// Password hashes computed at once, and how long a sign-in waits for a turn before a 503.
    pub password_hash_concurrency: usize,
    pub password_hash_wait: Duration,
    pub proxy_trusted_headers: Vec<String>,
    pub proxy_trusted_origins: Vec<IpNetwork>,
    pub oauth2: OAuth2Config,
    /// Extra browser origins allowed on the MCP endpoint, lowercase, without a trailing slash.
    pub mcp_allowed_origins: Vec<String>,
    /// Names passed to --experiments that are not known; logged as warnings at start.
    pub unknown_experiments: Vec<String>,
    /// MCP requests worked on at once (`mcp::admission`); `None` sizes it to the machine.
    pub mcp_max_concurrent_requests: Option<usize>,
    /// The longest a workspace command may run.
    pub max_command_timeout: Duration,
    pub allow_unsandboxed_workspaces: bool,
    /// The config file read, if any; hidden from workspaces.
    pub config_file: Option<PathBuf>,
    /// Where other replicas relay agent requests to; derived from the bound address if unset.
    pub relay_url: Option<Url>,
    pub workspaces: WorkspaceSandboxConfig,
    /// HTTPS, when enabled.
    pub tls: Option<TlsConfig>,
    /// Redirect requests that arrive on another scheme or host than the access URL's.
    pub redirect_to_access_url: bool,
    /// The Strict-Transport-Security value sent over HTTPS, when enabled.
    pub strict_transport_security: Option<String>,
    /// Where the Prometheus metrics are served, when enabled.
    pub prometheus_address: Option<String>,
    /// How long audit entries are kept; `None` keeps them.
    pub audit_logs_retention: Option<Duration>,
}

/// The HTTPS listener: where, with which certificates, from which TLS version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub address: String,
    /// Certificate chain and private key files, in order; the first is the default.
    pub pairs: Vec<(PathBuf, PathBuf)>,
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsConfig {
    fn from_options(opts: &ServerOptions) -> anyhow::Result<Option<TlsConfig>> {
        let certs = opts.tls_cert_file.clone().unwrap_or_default();
        let keys = opts.tls_key_file.clone().unwrap_or_default();
        if !opts.tls_enable.unwrap_or(false) {
            return Ok(None);
        }
        if certs.is_empty() || certs.len() != keys.len() {
            bail!(
                "--tls-enable needs as many --tls-key-file as --tls-cert-file paths (PEM files), \
                 at least one of each; got {} certificate and {} key files",
                certs.len(),
                keys.len()
            );
        }
        let min_version = match opts
            .tls_min_version
            .as_deref()
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("tls12") => TlsVersion::Tls12,
            Some("tls13") => TlsVersion::Tls13,
            Some(old @ ("tls10" | "tls11")) => bail!(
                "--tls-min-version {old}: TLS 1.0 and 1.1 are not supported (RFC 8996 deprecates \
                 them); use tls12 or tls13"
            ),
            Some(other) => bail!("--tls-min-version {other:?}: use tls12 or tls13"),
        };
        Ok(Some(TlsConfig {
            address: opts
                .tls_address
                .clone()
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "127.0.0.1:3443".to_owned()),
            pairs: certs.into_iter().zip(keys).collect(),
            min_version,
        }))
    }
}

/// The `Strict-Transport-Security` value (RFC 6797 §6.1) for `max_age` seconds and Coder's
/// options; `None` when `max_age` is 0.
fn strict_transport_security(opts: &ServerOptions) -> anyhow::Result<Option<String>> {
    let max_age = opts.strict_transport_security.unwrap_or(0);
    let options = opts
        .strict_transport_security_options
        .clone()
        .unwrap_or_default();
    let options: Vec<&str> = options
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if max_age == 0 {
        if !options.is_empty() {
            bail!(
                "--strict-transport-security-options needs --strict-transport-security set to a max-age in seconds"
            );
        }
        return Ok(None);
    }
    let mut value = format!("max-age={max_age}");
    for option in options {
        match option.to_ascii_lowercase().as_str() {
            "includesubdomains" => value.push_str("; includeSubDomains"),
            "preload" => value.push_str("; preload"),
            _ => bail!(
                "--strict-transport-security-options: unknown option {option:?}; use includeSubDomains or preload"
            ),
        }
    }
    Ok(Some(value))
}

/// A retention period: a Go duration, or whole days or weeks (`30d`, `52w`, as Coder's
/// retention flags take them); 0 keeps everything.
pub fn parse_retention(raw: &str) -> anyhow::Result<Option<Duration>> {
    let s = raw.trim();
    let days = |n: &str, per: u64| -> anyhow::Result<Duration> {
        let n: u64 = n.parse().context("not a whole number")?;
        n.checked_mul(per * 86_400)
            .map(Duration::from_secs)
            .context("too long")
    };
    let duration = if let Some(n) = s.strip_suffix('d') {
        days(n, 1)?
    } else if let Some(n) = s.strip_suffix('w') {
        days(n, 7)?
    } else {
        parse_duration(s)?
    };
    Ok((!duration.is_zero()).then_some(duration))
}

/// How workspaces are isolated and limited.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceSandboxConfig {
    /// Host uids the local provisioner gives workspaces (a root server).
    pub uid_range: std::ops::RangeInclusive<u32>,
    /// The limits every workspace gets, whichever provisioner starts it.
    pub limits: WorkspaceLimits,
    /// The `coder` binary agents run from; `None` is the running binary.
    pub agent_binary: Option<PathBuf>,
    /// The Docker engine container workspaces run on.
    pub docker_host: String,
}

impl Default for WorkspaceSandboxConfig {
    fn default() -> Self {
        WorkspaceSandboxConfig {
            uid_range: 1_000_000_000..=1_000_065_535,
            limits: WorkspaceLimits::default(),
            agent_binary: None,
            docker_host: crate::domain::container::DEFAULT_DOCKER_HOST.to_owned(),
        }
    }
}

impl WorkspaceSandboxConfig {
    fn from_options(opts: &ServerOptions) -> anyhow::Result<Self> {
        let defaults = WorkspaceLimits::default();
        let uid_range = match opts.workspace_uid_range.as_deref() {
            None => WorkspaceSandboxConfig::default().uid_range,
            Some(raw) => parse_uid_range(raw)
                .with_context(|| format!("--workspace-uid-range: {raw:?} is not a range such as 1000000000-1000065535 of uids from 1000 up"))?,
        };
        let bytes = |value: &Option<String>, default: Option<u64>, flag: &str| match value {
            None => Ok(default),
            Some(raw) => parse_bytes(raw)
                .map(|n| (n > 0).then_some(n))
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!("--{flag}: {raw:?} is not a size such as 4GiB, 512MiB or 0")
                }),
        };
        let cpu_cores = match opts.workspace_cpu_limit {
            Some(c) if c.is_nan() || c < 0.0 => {
                bail!("--workspace-cpu-limit must be 0 or more cores")
            }
            Some(c) if c > 0.0 && c < 0.01 => {
                bail!("--workspace-cpu-limit must be at least 0.01 cores (or 0 for no limit)")
            }
            Some(c) => (c > 0.0).then_some(c),
            None => None,
        };
        let host_network = match opts.workspace_network.as_deref().map(str::trim) {
            None | Some("none") => false,
            Some("host") => true,
            Some(other) => bail!("--workspace-network must be none or host, not {other:?}"),
        };
        let limits = WorkspaceLimits {
            max_processes: match opts.workspace_max_processes {
                Some(0) => None,
                Some(n) => Some(n),
                None => defaults.max_processes,
            },
            memory_bytes: bytes(
                &opts.workspace_memory_limit,
                defaults.memory_bytes,
                "workspace-memory-limit",
            )?,
            cpu_cores,
            max_file_bytes: bytes(
                &opts.workspace_max_file_size,
                defaults.max_file_bytes,
                "workspace-max-file-size",
            )?,
            disk_bytes: match bytes(&opts.workspace_disk_size, None, "workspace-disk-size")? {
                Some(n) if n < 64 << 20 => {
                    bail!(
                        "--workspace-disk-size must be at least 64MiB (or 0 for no disk of its own)"
                    )
                }
                other => other,
            },
            host_network,
        };
        Ok(WorkspaceSandboxConfig {
            uid_range,
            limits,
            agent_binary: opts.agent_binary.clone(),
            docker_host: opts
                .docker_host
                .clone()
                .filter(|h| !h.trim().is_empty())
                .unwrap_or_else(|| crate::domain::container::DEFAULT_DOCKER_HOST.to_owned()),
        })
    }
}

fn parse_uid_range(raw: &str) -> anyhow::Result<std::ops::RangeInclusive<u32>> {
    let (a, b) = raw.trim().split_once('-').context("no dash")?;
    let (a, b): (u32, u32) = (a.trim().parse()?, b.trim().parse()?);
    if a < 1000 || b < a {
        bail!("bad bounds");
    }
    Ok(a..=b)
}

pub use crate::domain::size::parse_bytes;

/// At most one password hash per core: more would only queue, each holding its memory.
fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The authorization server's lifetimes and limits.
#[derive(Debug, Clone)]
pub struct OAuth2Config {
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub rate_limit_per_ip: u32,
    pub rate_limit_per_client: u32,
    pub dynamic_client_ttl: Duration,
    /// Whether `client_id` may be an https URL naming a Client ID Metadata Document.
    pub client_id_metadata_documents: bool,
    /// Test-only: never set from flags, env or the config file.
    pub cimd_test_trust: Option<CimdTestTrust>,
    /// Dynamic registrations per hour from everyone together.
    pub registrations_per_hour: u32,
    /// Dynamically registered clients never used for a token that may exist at once.
    pub max_unused_dynamic_clients: u32,
}

/// **Test-only** relaxation of the metadata-document fetcher's defences, so tests can serve
/// documents from `127.0.0.1` with a throw-away CA. No flag, variable or config key sets it;
/// only code embedding the server (the integration tests) can, and `allow_loopback` must
/// still be set explicitly.
#[derive(Debug, Clone, Default)]
pub struct CimdTestTrust {
    /// PEM certificates trusted besides the public roots.
    pub extra_roots_pem: Vec<String>,
    /// Allow loopback addresses (127.0.0.0/8, ::1); every other non-public range stays refused.
    pub allow_loopback: bool,
    /// A shorter total fetch timeout than the default 5 seconds, so timeout tests run quickly.
    pub fetch_timeout: Option<Duration>,
}

impl Default for OAuth2Config {
    fn default() -> Self {
        OAuth2Config {
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(720 * 3600),
            rate_limit_per_ip: 300,
            rate_limit_per_client: 120,
            dynamic_client_ttl: Duration::from_secs(24 * 3600),
            client_id_metadata_documents: true,
            cimd_test_trust: None,
            registrations_per_hour: 3_600,
            max_unused_dynamic_clients: 10_000,
        }
    }
}

impl ServerConfig {
    /// Resolves the layers and checks every value, naming the option that is wrong.
    pub fn from_options(cli: ServerOptions, config_file: Option<&Path>) -> anyhow::Result<Self> {
        let file = match config_file {
            Some(path) => ServerOptions::from_file(path)?,
            None => ServerOptions::default(),
        };
        let opts = cli.or(file);
        let workspaces = WorkspaceSandboxConfig::from_options(&opts)?;
        let tls = TlsConfig::from_options(&opts)?;
        // Coder: an empty --http-address turns plain HTTP off (then HTTPS must be on).
        let http_address = opts
            .http_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
            .trim()
            .to_owned();
        if http_address.is_empty() && tls.is_none() {
            bail!(
                "--http-address is empty and --tls-enable is off: set one of them so the server has something to listen on"
            );
        }
        let prometheus_address = opts.prometheus_enable.unwrap_or(false).then(|| {
            opts.prometheus_address
                .clone()
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "127.0.0.1:2112".to_owned())
        });
        let audit_logs_retention = match opts.audit_logs_retention.as_deref() {
            None => None,
            Some(raw) => parse_retention(raw).with_context(|| {
                format!(
                    "--audit-logs-retention: {raw:?} is not a duration such as 8760h, 365d or 0"
                )
            })?,
        };
        let strict_transport_security = strict_transport_security(&opts)?;

        let access_url = opts
            .access_url
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(parse_access_url)
            .transpose()?;
        let (mut experiments, unknown_experiments) =
            Experiments::parse(opts.experiments.iter().flatten().map(String::as_str));
        // Coder graduated the `oauth2` experiment to this flag; either turns the server on.
        if opts.oauth2_provider_enable.unwrap_or(false) {
            experiments.enable(Experiment::OAuth2);
        }
        let data_dir = match opts.data_dir {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        let database = match opts.postgres_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => DatabaseTarget::Postgres(url),
            None => DatabaseTarget::Sqlite(data_dir.join("coder.db")),
        };
        let duration = |value: Option<String>, default: &str, flag: &str| {
            let raw = value.unwrap_or_else(|| default.to_owned());
            parse_duration(&raw).with_context(|| format!("--{flag}: invalid duration {raw:?}"))
        };
        let session_duration = duration(opts.session_duration, "24h", "session-duration")?;
        let default_token_lifetime = duration(
            opts.default_token_lifetime,
            "168h",
            "default-token-lifetime",
        )?;
        let max_token_lifetime = duration(opts.max_token_lifetime, "8760h", "max-token-lifetime")?;
        if default_token_lifetime > max_token_lifetime {
            bail!("--default-token-lifetime must not exceed --max-token-lifetime");
        }
        let login_rate_limit = opts.login_rate_limit.unwrap_or(30);
        if login_rate_limit == 0 {
            bail!("--login-rate-limit must be at least 1 attempt per minute");
        }
        let oauth2 = OAuth2Config {
            access_token_lifetime: duration(
                opts.oauth2_access_token_lifetime,
                "1h",
                "oauth2-access-token-lifetime",
            )?,
            refresh_token_lifetime: duration(
                opts.oauth2_refresh_token_lifetime,
                "720h",
                "oauth2-refresh-token-lifetime",
            )?,
            rate_limit_per_ip: opts.oauth2_rate_limit.unwrap_or(300),
            rate_limit_per_client: opts.oauth2_client_rate_limit.unwrap_or(120),
            dynamic_client_ttl: duration(
                opts.oauth2_dynamic_client_ttl,
                "24h",
                "oauth2-dynamic-client-ttl",
            )?,
            client_id_metadata_documents: opts
                .oauth2_client_id_metadata_document_enable
                .unwrap_or(true),
            cimd_test_trust: None,
            ..OAuth2Config::default()
        };
        if oauth2.access_token_lifetime < Duration::from_secs(60) {
            bail!("--oauth2-access-token-lifetime must be at least 1m");
        }
        if oauth2.refresh_token_lifetime <= oauth2.access_token_lifetime {
            bail!(
                "--oauth2-refresh-token-lifetime must be longer than --oauth2-access-token-lifetime"
            );
        }
        if oauth2.rate_limit_per_ip == 0 || oauth2.rate_limit_per_client == 0 {
            bail!(
                "--oauth2-rate-limit and --oauth2-client-rate-limit must be at least 1 per minute"
            );
        }
        if opts.mcp_max_concurrent_requests == Some(0) {
            bail!("--mcp-max-concurrent-requests must be at least 1");
        }
        let max_command_timeout = duration(opts.max_command_timeout, "5m", "max-command-timeout")?;
        if max_command_timeout < Duration::from_secs(1) {
            bail!("--max-command-timeout must be at least 1s");
        }
        let relay_url = opts
            .derp_server_relay_url
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|raw| {
                Url::parse(raw.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .with_context(|| format!("--derp-server-relay-url {raw:?} must be an http(s) URL other replicas can reach"))
            })
            .transpose()?;
        let proxy_trusted_origins = opts
            .proxy_trusted_origins
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| IpNetwork::parse(s).context("--proxy-trusted-origins"))
            .collect::<anyhow::Result<Vec<_>>>()?;

        Ok(ServerConfig {
            http_address,
            access_url,
            experiments,
            database,
            data_dir,
            log_format: opts.log_format.unwrap_or_default(),
            verbose: opts.verbose.unwrap_or(false),
            session_duration,
            default_token_lifetime,
            max_token_lifetime,
            login_rate_limit,
            password_hash_concurrency: default_hash_concurrency(),
            password_hash_wait: Duration::from_secs(2),
            proxy_trusted_headers: opts
                .proxy_trusted_headers
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            proxy_trusted_origins,
            oauth2,
            mcp_allowed_origins: opts
                .mcp_allowed_origins
                .unwrap_or_default()
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .map(|o| match url::Url::parse(&o) {
                    Ok(u) if u.host_str().is_some() => Ok(u.origin().ascii_serialization()),
                    _ => Err(anyhow::anyhow!(
                        "--mcp-allowed-origins: {o:?} is not an origin such as https://app.example.com"
                    )),
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            unknown_experiments,
            mcp_max_concurrent_requests: opts
                .mcp_max_concurrent_requests
                .and_then(|n| usize::try_from(n).ok()),
            max_command_timeout,
            allow_unsandboxed_workspaces: opts.allow_unsandboxed_workspaces.unwrap_or(false),
            config_file: config_file.map(Path::to_path_buf),
            relay_url,
            workspaces,
            tls,
            redirect_to_access_url: opts.redirect_to_access_url.unwrap_or(false),
            strict_transport_security,
            prometheus_address,
            audit_logs_retention,
        })
    }

    /// A configuration for tests and embedding: SQLite in `data_dir`, port 0, nothing enabled.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        ServerConfig {
            http_address: "127.0.0.1:0".to_owned(),
            access_url: None,
            experiments: Experiments::default(),
            database: DatabaseTarget::Sqlite(data_dir.join("coder.db")),
            data_dir,
            log_format: LogFormat::Human,
            verbose: false,
            session_duration: Duration::from_secs(24 * 3600),
            default_token_lifetime: Duration::from_secs(168 * 3600),
            max_token_lifetime: Duration::from_secs(8760 * 3600),
            login_rate_limit: 30,
            password_hash_concurrency: default_hash_concurrency(),
            password_hash_wait: Duration::from_secs(2),
            proxy_trusted_headers: Vec::new(),
            proxy_trusted_origins: Vec::new(),
            oauth2: OAuth2Config::default(),
            mcp_allowed_origins: Vec::new(),
            unknown_experiments: Vec::new(),
            mcp_max_concurrent_requests: None,
            max_command_timeout: Duration::from_secs(300),
            allow_unsandboxed_workspaces: false,
            config_file: None,
            relay_url: None,
            workspaces: WorkspaceSandboxConfig::default(),
            tls: None,
            redirect_to_access_url: false,
            strict_transport_security: None,
            prometheus_address: None,
            audit_logs_retention: None,
        }
    }
}

/// Checks that the access URL is an absolute http(s) URL at the root of its host, without
/// credentials, query or fragment: it becomes the OAuth issuer (RFC 8414 §2), which forbids them.
pub fn parse_access_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).with_context(|| {
        format!("--access-url {raw:?} is not an absolute URL (example: https://coder.example.com)")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "--access-url must use http or https, not {:?}",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("--access-url must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--access-url must not contain credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--access-url must not have a query or fragment");
    }
    if url.path() != "/" {
        bail!(
            "--access-url must be the root of its host (no path such as {:?})",
            url.path()
        );
    }
    Ok(url)
}

/// The per-user default data directory: `$XDG_CONFIG_HOME/coderv2` or `~/.config/coderv2`,
/// where Coder keeps its own server data.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("coderv2"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("cannot find a home directory: set --data-dir or CODER_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".config").join("coderv2"))
}

/// Parses Go-style durations as Coder's flags take them: `24h`, `1h30m`, `90s`, `500ms`.
pub fn parse_duration(raw: &str) -> anyhow::Result<Duration> {
    let s = raw.trim();
    if s.is_empty() {
        bail!("empty duration");
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            bail!("expected a number in {raw:?}");
        }
        let value: f64 = rest[..digits].parse().context("bad number")?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("missing unit in {raw:?} (use h, m, s or ms)"),
            other => bail!("unknown unit {other:?} in {raw:?}"),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * seconds_per_unit)
            .context("duration out of range")?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(
            parse_duration("24h").ok(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5_400))
        );
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn access_url_must_be_a_root_http_url() {
        assert!(parse_access_url("https://coder.example.com").is_ok());
        assert!(parse_access_url("http://127.0.0.1:3000/").is_ok());
        for bad in [
            "coder.example.com",
            "ftp://x",
            "https://x/?a=b",
            "https://x/#f",
            "https://u:p@x",
            "https://x/coder",
        ] {
            assert!(parse_access_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn flags_win_over_file_values() {
        let cli = ServerOptions {
            http_address: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        let file = ServerOptions {
            http_address: Some("127.0.0.1:1".into()),
            login_rate_limit: Some(5),
            ..Default::default()
        };
        let merged = cli.or(file);
        assert_eq!(merged.http_address.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(merged.login_rate_limit, Some(5));
    }

    #[test]
    fn retention_takes_days_weeks_and_go_durations() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_retention("0").ok(), Some(None));
        assert_eq!(parse_retention("30d").ok(), Some(Some(day * 30)));
        assert_eq!(parse_retention("52w").ok(), Some(Some(day * 364)));
        assert_eq!(parse_retention("720h").ok(), Some(Some(day * 30)));
        assert!(parse_retention("1y").is_err());
        assert!(parse_retention("d").is_err());
    }

    #[test]
    fn hsts_and_tls_options_are_checked() {
        let opts = |max_age, options: &[&str]| ServerOptions {
            strict_transport_security: Some(max_age),
            strict_transport_security_options: Some(
                options.iter().map(|o| o.to_string()).collect(),
            ),
            ..Default::default()
        };
        assert_eq!(
            strict_transport_security(&opts(31536000, &["includeSubDomains", "preload"])).ok(),
            Some(Some(
                "max-age=31536000; includeSubDomains; preload".to_owned()
            ))
        );
        assert_eq!(strict_transport_security(&opts(0, &[])).ok(), Some(None));
        assert!(strict_transport_security(&opts(0, &["preload"])).is_err());
        assert!(strict_transport_security(&opts(60, &["everything"])).is_err());
        let tls = |certs: &[&str], keys: &[&str], min: &str| {
            TlsConfig::from_options(&ServerOptions {
                tls_enable: Some(true),
                tls_cert_file: Some(certs.iter().map(PathBuf::from).collect()),
                tls_key_file: Some(keys.iter().map(PathBuf::from).collect()),
                tls_min_version: Some(min.to_owned()),
                ..Default::default()
            })
        };
        assert!(tls(&["a.pem"], &["a.key"], "tls13").is_ok_and(|t| {
            t.is_some_and(|t| t.min_version == TlsVersion::Tls13 && t.address == "127.0.0.1:3443")
        }));
        assert!(tls(&["a.pem", "b.pem"], &["a.key"], "tls12").is_err());
        assert!(tls(&[], &[], "tls12").is_err());
        assert!(tls(&["a.pem"], &["a.key"], "tls11").is_err());
    }

    #[test]
    fn ip_networks_match_their_members() {
        let net = IpNetwork::parse("10.0.0.0/8").ok();
        assert!(
            net.is_some_and(|n| n.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4]))))
        );
        let host = IpNetwork::parse("192.168.1.1").ok();
        assert!(host.is_some_and(|n| !n.contains(IpAddr::from([192, 168, 1, 2]))));
        assert!(IpNetwork::parse("10.0.0.0/33").is_err());
    }
}

/// Property tests of Go durations: any text is refused or read without panicking, and a
/// duration written out in Go's units reads back as itself.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text_is_refused_or_read(raw in prop_oneof![hostile_text(), "[0-9.]{0,30}(ns|us|µs|ms|s|m|h|d|x){0,3}"]) {
            timed("parse_duration", || parse_duration(&raw))?.ok();
        }

        #[test]
        fn go_durations_round_trip(h in 0u64..100_000, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
            let parsed = parse_duration(&text).unwrap();
            // Fractions go through f64; stay within a microsecond.
            prop_assert!(parsed.abs_diff(expected) < Duration::from_micros(1), "{text}: {parsed:?}");
        }
    }
}
