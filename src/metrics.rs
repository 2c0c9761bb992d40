//! Prometheus metrics: the families every part of the server counts into, and the
//! `/metrics` page (OpenMetrics text) served on `--prometheus-address`.
//!
//! Every label value comes from a closed set: route patterns (never raw paths), known HTTP
//! methods, status codes, MCP method and tool names from the catalog, client types, build
//! transitions and outcomes. Nothing a caller sends becomes a label, so the number of series
//! stays bounded. docs/metrics.md lists each family.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::ClientType;
use crate::store::PoolStats;

/// Seconds: 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Seconds: 0.1 s to about 27 minutes, doubling.
fn build_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpLabels {
    pub method: &'static str,
    pub tool: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpLatencyLabels {
    pub method: &'static str,
    pub tool: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    pub client_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub client_type: &'static str,
    pub decision: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub client_type: &'static str,
    pub grant_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReuseLabels {
    pub client_type: &'static str,
    pub credential: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevocationLabels {
    pub client_type: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub transition: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

/// Every family, registered once per server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    mcp_requests: Family<McpLabels, Counter>,
    mcp_duration: Family<McpLatencyLabels, Histogram>,
    oauth_authorizations: Family<DecisionLabels, Counter>,
    oauth_tokens: Family<GrantLabels, Counter>,
    oauth_reuse: Family<ReuseLabels, Counter>,
    oauth_revocations: Family<RevocationLabels, Counter>,
    builds: Family<BuildLabels, Counter>,
    build_duration: Family<BuildLabels, Histogram>,
    jobs_pending: Gauge,
    database_up: Gauge,
    db_open: Gauge,
    db_idle: Gauge,
    db_in_use: Gauge,
    db_waiting: Gauge,
    db_errors: Family<ErrorLabels, Counter>,
    agents_connected: Gauge,
    /// Only one scrape samples at a time (the error counters advance by differences).
    sampling: Mutex<()>,
}

/// What a scrape reads from the rest of the server.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub pool: PoolStats,
    pub database_up: bool,
    /// `None` when the database could not be asked.
    pub jobs_pending: Option<i64>,
    pub agents_connected: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coderd");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and method",
            http_duration.clone(),
        );
        let mcp_requests = Family::<McpLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "MCP JSON-RPC messages handled, by method, tool (tools/call only) and outcome",
            mcp_requests.clone(),
        );
        let mcp_duration = Family::<McpLatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "mcp_request_duration_seconds",
            "Time to answer an MCP message, by method and tool",
            mcp_duration.clone(),
        );
        let oauth_authorizations = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "oauth2_authorizations",
            "Consent decisions on the authorization page, by client type and decision",
            oauth_authorizations.clone(),
        );
        let oauth_tokens = Family::<GrantLabels, Counter>::default();
        registry.register(
            "oauth2_tokens_issued",
            "Token responses issued, by client type and grant type (refresh_token: refreshes)",
            oauth_tokens.clone(),
        );
        let oauth_reuse = Family::<ReuseLabels, Counter>::default();
        registry.register(
            "oauth2_reuse_detected",
            "Authorization codes or rotated refresh tokens presented again (the grant is revoked)",
            oauth_reuse.clone(),
        );
        let oauth_revocations = Family::<RevocationLabels, Counter>::default();
        registry.register(
            "oauth2_revocations",
            "Grants revoked, by client type and reason",
            oauth_revocations.clone(),
        );
        let builds = Family::<BuildLabels, Counter>::default();
        registry.register(
            "workspace_builds",
            "Workspace builds this replica ran to an end, by transition and outcome",
            builds.clone(),
        );
        let build_duration = Family::<BuildLabels, Histogram>::new_with_constructor(
            build_histogram as fn() -> Histogram,
        );
        registry.register(
            "workspace_build_duration_seconds",
            "How long workspace builds ran, by transition and outcome",
            build_duration.clone(),
        );
        let jobs_pending = Gauge::default();
        registry.register(
            "provisioner_jobs_pending",
            "Provisioner jobs waiting in the queue (all replicas)",
            jobs_pending.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 while the database is reachable, 0 while it is not",
            database_up.clone(),
        );
        let db_open = Gauge::default();
        registry.register(
            "database_connections_open",
            "Database connections open (in use or idle)",
            db_open.clone(),
        );
        let db_idle = Gauge::default();
        registry.register(
            "database_connections_idle",
            "Database connections open and idle",
            db_idle.clone(),
        );
        let db_in_use = Gauge::default();
        registry.register(
            "database_connections_in_use",
            "Database connections in use",
            db_in_use.clone(),
        );
        let db_waiting = Gauge::default();
        registry.register(
            "database_connections_waiting",
            "Calls waiting for a database connection",
            db_waiting.clone(),
        );
        let db_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "database_errors",
            "Failed database calls, by kind: unavailable, conflict or other",
            db_errors.clone(),
        );
        let agents_connected = Gauge::default();
        registry.register(
            "agents_connected",
            "Workspace agents connected to this replica",
            agents_connected.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            mcp_requests,
            mcp_duration,
            oauth_authorizations,
            oauth_tokens,
            oauth_reuse,
            oauth_revocations,
            builds,
            build_duration,
            jobs_pending,
            database_up,
            db_open,
            db_idle,
            db_in_use,
            db_waiting,
            db_errors,
            agents_connected,
            sampling: Mutex::new(()),
        }
    }

    /// An HTTP request answered; `route` is the matched route pattern.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// One MCP message handled; `tool` is a catalog name or empty.
    pub fn mcp_request(
        &self,
        method: &'static str,
        tool: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.mcp_requests
            .get_or_create(&McpLabels {
                method,
                tool,
                outcome,
            })
            .inc();
        self.mcp_duration
            .get_or_create(&McpLatencyLabels { method, tool })
            .observe(took.as_secs_f64());
    }

    pub fn oauth_authorization(&self, client: ClientType, allowed: bool) {
        self.oauth_authorizations
            .get_or_create(&DecisionLabels {
                client_type: client.as_str(),
                decision: if allowed { "allow" } else { "deny" },
            })
            .inc();
    }

    pub fn oauth_token_issued(&self, client: ClientType, grant_type: &str) {
        let grant_type = match grant_type {
            "authorization_code" => "authorization_code",
            "refresh_token" => "refresh_token",
            _ => "other",
        };
        self.oauth_tokens
            .get_or_create(&GrantLabels {
                client_type: client.as_str(),
                grant_type,
            })
            .inc();
    }

    /// `credential`: `authorization_code` or `refresh_token`.
    pub fn oauth_reuse_detected(&self, client: ClientType, credential: &'static str) {
        self.oauth_reuse
            .get_or_create(&ReuseLabels {
                client_type: client.as_str(),
                credential,
            })
            .inc();
    }

    /// `reason`: `client` (RFC 7009), `user`, `reuse`, or `admin`.
    pub fn oauth_revoked(&self, client: ClientType, reason: &'static str, grants: u64) {
        self.oauth_revocations
            .get_or_create(&RevocationLabels {
                client_type: client.as_str(),
                reason,
            })
            .inc_by(grants);
    }

    pub fn build_finished(&self, transition: &'static str, outcome: &'static str, took: Duration) {
        let labels = BuildLabels {
            transition,
            outcome,
        };
        self.builds.get_or_create(&labels).inc();
        self.build_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The page: samples what is read at scrape time, then writes every family.
    pub fn render(&self, sample: Sample) -> String {
        {
            let _one_at_a_time = self.sampling.lock().unwrap_or_else(|p| p.into_inner());
            let pool = sample.pool;
            self.database_up.set(i64::from(sample.database_up));
            self.db_open.set(clamp(pool.open));
            self.db_idle.set(clamp(pool.idle));
            self.db_in_use
                .set(clamp(pool.open.saturating_sub(pool.idle)));
            self.db_waiting.set(clamp(pool.waiting));
            for (kind, total) in [
                ("unavailable", pool.unavailable_errors),
                ("conflict", pool.conflict_errors),
                ("other", pool.other_errors),
            ] {
                let counter = self.db_errors.get_or_create(&ErrorLabels { kind });
                counter.inc_by(total.saturating_sub(counter.get()));
            }
            if let Some(pending) = sample.jobs_pending {
                self.jobs_pending.set(pending);
            }
            self.agents_connected
                .set(i64::try_from(sample.agents_connected).unwrap_or(i64::MAX));
        }
        let mut page = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut page, &self.registry) {
            tracing::error!(error = %err, "could not render the metrics");
        }
        page
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An HTTP method as a label: the standard ones by name, anything else as `other` (an
/// extension method is whatever the client wrote).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_their_labels() {
        let metrics = Metrics::new();
        metrics.http_request("/api/v2/users/{user}", "GET", 200, Duration::from_millis(3));
        metrics.mcp_request(
            "tools/call",
            "coder_list_workspaces",
            "success",
            Duration::ZERO,
        );
        let page = metrics.render(Sample {
            pool: PoolStats {
                open: 3,
                idle: 1,
                other_errors: 2,
                ..PoolStats::default()
            },
            database_up: true,
            jobs_pending: Some(4),
            agents_connected: 5,
        });
        for line in [
            "coderd_http_requests_total{route=\"/api/v2/users/{user}\",method=\"GET\",status=\"200\"} 1",
            "coderd_mcp_requests_total{method=\"tools/call\",tool=\"coder_list_workspaces\",outcome=\"success\"} 1",
            "coderd_database_connections_in_use 2",
            "coderd_database_errors_total{kind=\"other\"} 2",
            "coderd_provisioner_jobs_pending 4",
            "coderd_agents_connected 5",
            "coderd_database_up 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");
        }
        assert!(page.ends_with("# EOF\n"));
    }

    #[test]
    fn extension_methods_are_not_labels() {
        let odd = axum::http::Method::from_bytes(b"BREW").unwrap_or_default();
        assert_eq!(method_label(&odd), "other");
    }
}
