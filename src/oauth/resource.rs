//! Resource indicators (RFC 8707): the canonical form of a `resource` value and the audiences
//! this server issues tokens for (mcp-requirements X1–X3, Z6).

use url::Url;

/// Path of the remote MCP endpoint below the access URL.
pub const MCP_PATH: &str = "/api/experimental/mcp/http";

/// The canonical form of a resource URI, or `None` when it cannot name a resource here.
///
/// The URI must be absolute `http` or `https` without a fragment (RFC 8707 §2) or user
/// information. Scheme and host are lowercased and a default port dropped (RFC 3986 §6.2.2–§6.2.3),
/// one trailing `/` of the path is removed (MCP authorization §Canonical Server URI: clients
/// SHOULD omit it, some send it), so `https://Host/` becomes `https://host`. The query is kept.
pub fn canonicalize(raw: &str) -> Option<String> {
    // `url` strips surrounding whitespace and tabs/newlines inside; a resource that needs that
    // is not one a client computed from our metadata.
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    // `url` reads `https:/host` and `https:///host` as `https://host/`; insist on a
    // `//authority` that is present and carries no user information (RFC 3986 §3.2).
    let after_scheme = raw.get(url.scheme().len()..)?;
    let rest = after_scheme.strip_prefix("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.host_str().filter(|h| !h.is_empty())?;
    Some(canonical_from_url(&url))
}

/// Serializes `url` as scheme, lowercase host, non-default port, path without one trailing `/`,
/// and query; a fragment or user information is not part of the output.
fn canonical_from_url(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let path = url.path();
    out.push_str(path.strip_suffix('/').unwrap_or(path));
    if let Some(query) = url.query().filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The audiences this deployment issues access tokens for, in canonical form.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The access URL itself (clients that discovered a root protected-resource metadata
    /// document send the origin).
    pub access_url: String,
    /// The remote MCP endpoint, the default audience.
    pub mcp_url: String,
}

/// A `resource` this server does not serve (RFC 8707 §2: `invalid_target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTarget(pub String);

impl std::fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidTarget {}

impl Resources {
    pub fn new(access_url: &Url) -> Self {
        let mut base = access_url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let origin_and_path = canonical_from_url(&base);
        Self {
            access_url: canonical_from_url(access_url),
            mcp_url: format!("{origin_and_path}{MCP_PATH}"),
        }
    }

    /// The audience for a token requested with `resource` (RFC 8707 §2).
    ///
    /// Absent → the MCP endpoint (Z6). Otherwise any spelling whose canonical form is the access
    /// URL or the MCP endpoint (X2: case of scheme and host, a trailing `/`, the default port)
    /// yields that canonical value; anything else is `invalid_target`.
    pub fn audience_for(&self, requested: Option<&str>) -> Result<String, InvalidTarget> {
        let Some(raw) = requested else {
            return Ok(self.mcp_url.clone());
        };
        match canonicalize(raw) {
            Some(c) if self.accepts_audience(&c) => Ok(c),
            _ => Err(InvalidTarget(format!(
                "resource must be {} or {} (RFC 8707 §2)",
                self.mcp_url, self.access_url
            ))),
        }
    }

    /// Whether an access token with this `aud` was issued for this server (X3).
    pub fn accepts_audience(&self, aud: &str) -> bool {
        aud == self.mcp_url || aud == self.access_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(access: &str) -> Resources {
        match Url::parse(access) {
            Ok(u) => Resources::new(&u),
            Err(e) => panic!("bad test URL {access}: {e}"),
        }
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("https://Host/", "https://host"),
            ("https://host", "https://host"),
            ("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp"),
            (
                "https://mcp.example.com/mcp/",
                "https://mcp.example.com/mcp",
            ),
            (
                "https://mcp.example.com:443/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("http://localhost:80/", "http://localhost"),
            ("http://localhost:3000/", "http://localhost:3000"),
            ("https://h:8443/a/b", "https://h:8443/a/b"),
            ("https://h/a?x=1", "https://h/a?x=1"),
            ("https://h/?x=1", "https://h?x=1"),
            ("https://h/a?", "https://h/a"),
            ("https://h/a//", "https://h/a/"),
            ("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonicalize(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn path_case_is_kept() {
        assert_eq!(
            canonicalize("https://H/API/MCP").as_deref(),
            Some("https://h/API/MCP")
        );
    }

    #[test]
    fn invalid_resources() {
        for raw in [
            "",
            "mcp",
            "/api/experimental/mcp/http",
            "https://host/mcp#frag",
            "https://host/#",
            "ftp://host/mcp",
            "urn:example:mcp",
            "file:///etc/passwd",
            "https://user:pw@host/mcp",
            "https://@host/mcp",
            "https:/host/mcp",
            "https:///host/mcp",
            " https://host/mcp",
            "https://host/mcp\n",
            "https:\\\\host\\mcp",
        ] {
            assert_eq!(canonicalize(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn resources_from_access_url() {
        let r = resources("https://Coder.Example.com/");
        assert_eq!(r.access_url, "https://coder.example.com");
        assert_eq!(
            r.mcp_url,
            "https://coder.example.com/api/experimental/mcp/http"
        );
        let r = resources("http://127.0.0.1:3000");
        assert_eq!(r.access_url, "http://127.0.0.1:3000");
        assert_eq!(r.mcp_url, "http://127.0.0.1:3000/api/experimental/mcp/http");
    }

    #[test]
    fn resources_under_a_path_prefix() {
        let r = resources("https://example.com/coder/");
        assert_eq!(r.access_url, "https://example.com/coder");
        assert_eq!(
            r.mcp_url,
            "https://example.com/coder/api/experimental/mcp/http"
        );
    }

    #[test]
    fn missing_resource_defaults_to_mcp_endpoint() {
        let r = resources("https://coder.example.com");
        assert_eq!(r.audience_for(None), Ok(r.mcp_url.clone()));
    }

    #[test]
    fn accepted_spellings() {
        let r = resources("https://coder.example.com");
        let mcp = "https://coder.example.com/api/experimental/mcp/http";
        for raw in [
            mcp,
            "https://coder.example.com/api/experimental/mcp/http/",
            "HTTPS://CODER.EXAMPLE.COM/api/experimental/mcp/http",
            "https://coder.example.com:443/api/experimental/mcp/http",
        ] {
            assert_eq!(r.audience_for(Some(raw)).as_deref(), Ok(mcp), "{raw}");
        }
        for raw in [
            "https://coder.example.com",
            "https://coder.example.com/",
            "https://Coder.Example.Com:443/",
        ] {
            assert_eq!(
                r.audience_for(Some(raw)).as_deref(),
                Ok("https://coder.example.com"),
                "{raw}"
            );
        }
    }

    #[test]
    fn rejected_targets_name_the_accepted_values() {
        let r = resources("https://coder.example.com");
        for raw in [
            "https://evil.example.com/api/experimental/mcp/http",
            "http://coder.example.com/api/experimental/mcp/http",
            "https://coder.example.com:8443/api/experimental/mcp/http",
            "https://coder.example.com/api/experimental/mcp",
            "https://coder.example.com/api/experimental/mcp/http/extra",
            "https://coder.example.com/API/experimental/mcp/http",
            "https://coder.example.com/api/experimental/mcp/http#x",
            "https://coder.example.com/api/experimental/mcp/http?x=1",
            "not a url",
            "",
        ] {
            let err = match r.audience_for(Some(raw)) {
                Err(e) => e,
                Ok(aud) => panic!("{raw:?} accepted as {aud}"),
            };
            assert!(err.0.contains(&r.mcp_url), "{err}");
            assert!(err.0.contains("https://coder.example.com "), "{err}");
            assert!(err.to_string().contains("RFC 8707"));
        }
    }

    #[test]
    fn accepts_only_canonical_audiences() {
        let r = resources("https://coder.example.com");
        assert!(r.accepts_audience("https://coder.example.com/api/experimental/mcp/http"));
        assert!(r.accepts_audience("https://coder.example.com"));
        assert!(!r.accepts_audience("https://coder.example.com/"));
        assert!(!r.accepts_audience("https://coder.example.com/api/experimental/mcp/http/"));
        assert!(!r.accepts_audience("https://other.example.com"));
        assert!(!r.accepts_audience(""));
    }
}
