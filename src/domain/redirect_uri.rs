//! Redirect URI policy: what a client may register (OAuth 2.1 §2.3, RFC 8252 §7), how a
//! requested URI is matched against the registered ones (RFC 6749 §3.1.2.3, RFC 8252 §7.3), and
//! how the redirect back to the client is built (RFC 6749 §4.1.2, RFC 9207).

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url, form_urlencoded};

/// Longest redirect URI accepted at registration, in bytes.
pub const MAX_LEN: usize = 2048;

/// The loopback hosts of RFC 8252 §7.3, spelled as they appear in a URI.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Schemes that run code, read local data or leave the browser: never a redirect target
/// (OAuth 2.1 §2.3, RFC 6819 §4.4.1.5).
const DANGEROUS_SCHEMES: [&str; 7] = [
    "javascript",
    "data",
    "file",
    "ftp",
    "vbscript",
    "blob",
    "about",
];

/// Schemes that hand the URI to another application rather than back to the client.
const NON_CALLBACK_SCHEMES: [&str; 3] = ["mailto", "tel", "sms"];

/// Private-use schemes (RFC 8252 §7.1) of IDEs and agents that are not in reverse-DNS form but
/// are registered by widely used MCP clients (mcp-requirements U4).
const KNOWN_APP_SCHEMES: [&str; 5] = ["cursor", "vscode", "vscode-insiders", "windsurf", "claude"];

/// Out-of-band "redirect" of the retired OOB flow.
const OOB_URN: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Query parameters the authorization server writes into the redirect (RFC 6749 §4.1.2,
/// §4.1.2.1; RFC 9207 §2). A registered URI must not be able to pre-set them.
const RESPONSE_PARAMS: [&str; 6] = [
    "code",
    "state",
    "error",
    "error_description",
    "error_uri",
    "iss",
];

/// Why a redirect URI cannot be registered. Each message tells the client what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI must not be empty")]
    Empty,
    #[error("redirect URI is {0} bytes long; at most 2048 bytes are allowed")]
    TooLong(usize),
    #[error(
        "redirect URI must be printable ASCII without spaces, control characters or backslashes; \
         percent-encode other characters (RFC 3986 §2.1)"
    )]
    InvalidCharacter,
    #[error("redirect URI must be an absolute URI with a scheme (RFC 6749 §3.1.2): {0}")]
    NotAbsolute(String),
    #[error("redirect URI must not contain a fragment (RFC 6749 §3.1.2)")]
    Fragment,
    #[error("redirect URI must not contain user information (user:password@) (OAuth 2.1 §2.3)")]
    UserInfo,
    #[error(
        "out-of-band redirects (urn:ietf:wg:oauth:2.0:oob) are not supported; use a loopback \
         redirect such as http://127.0.0.1/callback (RFC 8252 §7.3)"
    )]
    OutOfBand,
    #[error("redirect URI scheme `{0}:` is not allowed (OAuth 2.1 §2.3)")]
    ForbiddenScheme(String),
    #[error("redirect URI `{0}:` must be written with an authority, as {0}://host/path")]
    MissingAuthority(String),
    #[error("https redirect URI must name a host")]
    MissingHost,
    #[error(
        "http redirect URIs are only allowed for loopback hosts (localhost, 127.0.0.1, [::1]); \
         use https for any other host (OAuth 2.1 §2.3.1, RFC 8252 §7.3)"
    )]
    HttpNotLoopback,
    #[error(
        "redirect URI scheme `{0}:` is not supported: use https, http on a loopback host, or a \
         private-use scheme in reverse-DNS form such as com.example.app:/callback (RFC 8252 §7.1)"
    )]
    UnsupportedScheme(String),
    #[error(
        "private-use redirect URI must have a path or an authority, such as {0}:/callback or \
         {0}://callback (RFC 8252 §7.1)"
    )]
    MissingPathOrAuthority(String),
}

/// Checks a redirect URI offered at registration (RFC 7591 §2, OAuth 2.1 §2.3,
/// mcp-requirements U1–U5).
///
/// Accepted: `https` with a host; `http` on `localhost`, `127.0.0.1` or `[::1]` (any port), and
/// for confidential clients also on a `*.localhost` name (RFC 6761 §6.3 reserves it for
/// loopback; matched with its exact port); private-use schemes (RFC 8252 §7.1) in reverse-DNS
/// form or from the IDE/agent allowlist, with a path or an authority.
pub fn validate_for_registration(uri: &str, public_client: bool) -> Result<(), RedirectUriError> {
    if uri.is_empty() {
        return Err(RedirectUriError::Empty);
    }
    if uri.len() > MAX_LEN {
        return Err(RedirectUriError::TooLong(uri.len()));
    }
    // The WHATWG parser behind `url` silently strips tabs and newlines and reads `\` as `/`;
    // refusing them keeps the stored string and the URI the browser follows the same.
    if !uri.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(RedirectUriError::InvalidCharacter);
    }
    if uri.eq_ignore_ascii_case(OOB_URN) {
        return Err(RedirectUriError::OutOfBand);
    }
    let url = Url::parse(uri).map_err(|e| RedirectUriError::NotAbsolute(e.to_string()))?;
    let scheme = url.scheme();

    if DANGEROUS_SCHEMES.contains(&scheme) || NON_CALLBACK_SCHEMES.contains(&scheme) {
        return Err(RedirectUriError::ForbiddenScheme(scheme.to_owned()));
    }
    if scheme == "urn" {
        return Err(RedirectUriError::UnsupportedScheme(scheme.to_owned()));
    }
    if uri.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    let authority = raw_authority(uri);
    if authority.is_some_and(|a| a.contains('@')) || !url.username().is_empty() {
        return Err(RedirectUriError::UserInfo);
    }

    match scheme {
        "https" => {
            // `url` would read `https:/host` or `https:///host` as `https://host/`.
            let host =
                authority.ok_or_else(|| RedirectUriError::MissingAuthority("https".into()))?;
            if host.is_empty() || url.host_str().is_none_or(str::is_empty) {
                return Err(RedirectUriError::MissingHost);
            }
            Ok(())
        }
        "http" => check_http(&url, authority, public_client),
        _ => {
            if !is_private_use_scheme(scheme) {
                return Err(RedirectUriError::UnsupportedScheme(scheme.to_owned()));
            }
            // RFC 8252 §7.1 examples are `com.example.app:/oauth2redirect/example-provider`;
            // an opaque `com.example.app:cb` has neither a path nor an authority.
            if url.cannot_be_a_base() {
                return Err(RedirectUriError::MissingPathOrAuthority(scheme.to_owned()));
            }
            Ok(())
        }
    }
}

/// `http` is for loopback only: `localhost`, `127.0.0.1` and `[::1]` as written (RFC 8252
/// §7.3), and for confidential clients also a `*.localhost` name.
fn check_http(
    url: &Url,
    authority: Option<&str>,
    public_client: bool,
) -> Result<(), RedirectUriError> {
    let authority = authority.ok_or_else(|| RedirectUriError::MissingAuthority("http".into()))?;
    let raw_host = split_host_port(authority).map(|(h, _)| h);
    let literal_loopback = raw_host.is_some_and(is_loopback_literal);
    let parsed_loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    };
    if literal_loopback && parsed_loopback {
        return Ok(());
    }
    // RFC 6761 §6.3: `*.localhost` names resolve to loopback. A confidential client
    // proves itself with its secret at the token endpoint, so it may use one; a public
    // client gets only the three hosts the port exception of RFC 8252 §7.3 covers.
    let dot_localhost = raw_host.is_some_and(|h| {
        let h = h.to_ascii_lowercase();
        h.len() > ".localhost".len() && h.ends_with(".localhost")
    }) && matches!(url.host(), Some(Host::Domain(d)) if d.ends_with(".localhost"));
    if dot_localhost && !public_client {
        return Ok(());
    }
    Err(RedirectUriError::HttpNotLoopback)
}

/// Whether `requested` may be used as the redirect of an authorization request from a client
/// that registered `registered` (RFC 6749 §3.1.2.3, OAuth 2.1 §4.1.1, mcp-requirements U2–U3).
///
/// Simple string comparison, with the one exception of RFC 8252 §7.3: for `http` on
/// `localhost`, `127.0.0.1` or `[::1]` the port is ignored (native apps bind an ephemeral port).
/// Scheme, host, path and query must still be identical.
pub fn matches(registered: &[String], requested: &str) -> bool {
    registered
        .iter()
        .any(|r| r == requested || loopback_equivalent(r, requested))
}

/// What the consent page shows as the destination of the redirect: `host[:port]` for http(s)
/// (the port only when it is not the default), `scheme:` for private-use schemes.
pub fn redirect_host(uri: &str) -> String {
    let Ok(url) = Url::parse(uri) else {
        return uri.to_owned();
    };
    match url.scheme() {
        "http" | "https" => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        }
        scheme => format!("{scheme}:"),
    }
}

/// The redirect back to the client: `uri` with the authorization response parameters added to
/// its query (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207 §2).
///
/// The registered query is kept byte for byte (RFC 6749 §3.1.2 "MUST retain the query
/// component") except for parameters named like response parameters, which are removed so a
/// registration cannot inject a `code`, `state`, `error` or `iss`. The new parameters are
/// `application/x-www-form-urlencoded` (RFC 6749 Appendix B). A fragment, which registration
/// refuses anyway, is dropped (RFC 6749 §3.1.2). Works on any scheme.
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let without_fragment = uri.split_once('#').map_or(uri, |(before, _)| before);
    let (base, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));

    let mut parts: Vec<String> = query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .filter(|segment| {
            let key = form_urlencoded::parse(segment.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            !RESPONSE_PARAMS.contains(&key.as_str())
        })
        .map(str::to_owned)
        .collect();

    let mut added = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        added.append_pair(k, v);
    }
    let added = added.finish();
    if !added.is_empty() {
        parts.push(added);
    }

    if parts.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", parts.join("&"))
    }
}

/// The raw authority of `scheme://authority/...`, or `None` when the URI has no `//`.
fn raw_authority(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let rest = rest.strip_prefix("//")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Splits a raw authority without userinfo into its host and optional port.
/// Returns `None` when the port is not a number in 0..=65535.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        (host, rest)
    } else {
        match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        }
    };
    let port = match port {
        "" => None,
        p => {
            let digits = p.strip_prefix(':')?;
            if digits.is_empty() {
                None
            } else if digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(digits.parse::<u16>().ok()?)
            } else {
                return None;
            }
        }
    };
    Some((host, port))
}

fn is_loopback_literal(host: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// RFC 8252 §7.1: a reverse-DNS name (`com.example.app`), or one of the known IDE/agent schemes.
fn is_private_use_scheme(scheme: &str) -> bool {
    if KNOWN_APP_SCHEMES.contains(&scheme) {
        return true;
    }
    scheme.contains('.') && scheme.split('.').all(|label| !label.is_empty())
}

/// RFC 8252 §7.3: two `http` loopback URIs that differ only in the port.
fn loopback_equivalent(registered: &str, requested: &str) -> bool {
    match (split_loopback(registered), split_loopback(requested)) {
        (Some((host_a, rest_a)), Some((host_b, rest_b))) => {
            host_a.eq_ignore_ascii_case(host_b) && rest_a == rest_b
        }
        _ => false,
    }
}

/// For `http://<loopback>[:port]<path-and-query>`, the host and the path-and-query.
fn split_loopback(uri: &str) -> Option<(&str, &str)> {
    if uri.contains('#') {
        return None;
    }
    // `get`, not `split_at`: a requested URI is untrusted text, and byte 7 may fall inside a
    // multi-byte character (split_at panicked there).
    let scheme = uri.get(.."http://".len())?;
    let rest = uri.get("http://".len()..)?;
    if !scheme.eq_ignore_ascii_case("http://") {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    let (host, _port) = split_host_port(authority)?;
    is_loopback_literal(host).then_some((host, path_and_query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(uri: &str) {
        assert_eq!(
            validate_for_registration(uri, true),
            Ok(()),
            "public: {uri}"
        );
        assert_eq!(
            validate_for_registration(uri, false),
            Ok(()),
            "confidential: {uri}"
        );
    }

    fn refused(uri: &str) -> RedirectUriError {
        let public = validate_for_registration(uri, true);
        let confidential = validate_for_registration(uri, false);
        assert!(public.is_err(), "public client accepted {uri}");
        assert_eq!(public, confidential, "{uri}");
        public.err().unwrap_or(RedirectUriError::Empty)
    }

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| (*s).to_owned()).collect()
    }

    // --- registration: what real MCP clients register ---

    #[test]
    fn accepts_claude_ai() {
        ok("https://claude.ai/api/mcp/auth_callback");
    }

    #[test]
    fn accepts_cursor_uris() {
        ok("cursor://anysphere.cursor-mcp/oauth/callback");
        ok("https://www.cursor.com/agents/mcp/oauth/callback");
        ok("http://localhost:8787/callback");
    }

    #[test]
    fn accepts_vscode_uris() {
        ok("http://127.0.0.1:33418/");
        ok("https://vscode.dev/redirect");
        ok("vscode://");
        ok("vscode-insiders://vscode.github-authentication/did-authenticate");
    }

    #[test]
    fn accepts_mcp_inspector() {
        ok("http://localhost:6274/oauth/callback");
    }

    #[test]
    fn accepts_other_ide_schemes() {
        ok("windsurf://codeium.windsurf/oauth/callback");
        ok("claude://claude.ai/oauth/callback");
    }

    #[test]
    fn accepts_loopback_hosts_on_any_port() {
        ok("http://localhost/cb");
        ok("http://localhost:1/cb");
        ok("http://127.0.0.1:65535/cb");
        ok("http://[::1]/cb");
        ok("http://[::1]:9000/cb?x=1");
    }

    #[test]
    fn accepts_https_with_port_and_query() {
        ok("https://example.com:8443/cb?tenant=a");
    }

    #[test]
    fn accepts_reverse_dns_private_use_schemes() {
        ok("com.example.app:/cb");
        ok("com.example.app://auth/cb");
        ok("com.example.app:/");
    }

    // --- registration: refusals ---

    #[test]
    fn refuses_dangerous_schemes() {
        for uri in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://example.com/cb",
            "vbscript:msgbox(1)",
            "blob:https://example.com/uuid",
            "about:blank",
        ] {
            assert!(
                matches!(refused(uri), RedirectUriError::ForbiddenScheme(_)),
                "{uri}"
            );
        }
    }

    #[test]
    fn refuses_mailto_tel_sms() {
        for uri in ["mailto:a@example.com", "tel:+15551234", "sms:+15551234"] {
            assert!(
                matches!(refused(uri), RedirectUriError::ForbiddenScheme(_)),
                "{uri}"
            );
        }
    }

    #[test]
    fn refuses_http_on_other_hosts() {
        for uri in [
            "http://example.com/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.2/cb",
            "http://0.0.0.0/cb",
            "http://127.1/cb",
            "http://[::2]/cb",
        ] {
            assert_eq!(refused(uri), RedirectUriError::HttpNotLoopback, "{uri}");
        }
    }

    #[test]
    fn dot_localhost_only_for_confidential_clients() {
        let uri = "http://app.localhost:3000/cb";
        assert_eq!(validate_for_registration(uri, false), Ok(()));
        assert_eq!(
            validate_for_registration(uri, true),
            Err(RedirectUriError::HttpNotLoopback)
        );
        assert!(validate_for_registration("http://.localhost/cb", false).is_err());
        assert!(validate_for_registration("http://localhost.evil/cb", false).is_err());
    }

    #[test]
    fn refuses_fragments() {
        assert_eq!(
            refused("https://claude.ai/cb#x"),
            RedirectUriError::Fragment
        );
        assert_eq!(refused("https://claude.ai/cb#"), RedirectUriError::Fragment);
        assert_eq!(refused("http://localhost/cb#x"), RedirectUriError::Fragment);
        assert_eq!(refused("com.example.app:/cb#x"), RedirectUriError::Fragment);
    }

    #[test]
    fn refuses_userinfo() {
        assert_eq!(
            refused("https://user:pw@claude.ai/cb"),
            RedirectUriError::UserInfo
        );
        assert_eq!(
            refused("https://user@claude.ai/cb"),
            RedirectUriError::UserInfo
        );
        assert_eq!(refused("https://@claude.ai/cb"), RedirectUriError::UserInfo);
        assert_eq!(
            refused("http://evil@localhost/cb"),
            RedirectUriError::UserInfo
        );
        assert_eq!(
            refused("cursor://x@anysphere/cb"),
            RedirectUriError::UserInfo
        );
    }

    #[test]
    fn refuses_private_use_scheme_without_path_or_authority() {
        assert_eq!(
            refused("com.example.app:cb"),
            RedirectUriError::MissingPathOrAuthority("com.example.app".into())
        );
        assert_eq!(
            refused("vscode:"),
            RedirectUriError::MissingPathOrAuthority("vscode".into())
        );
    }

    #[test]
    fn refuses_unknown_single_label_schemes() {
        for (uri, scheme) in [
            ("myapp://cb", "myapp"),
            ("ws://localhost/cb", "ws"),
            ("ssh://host/", "ssh"),
            ("com.:/cb", "com."),
            ("a..b:/cb", "a..b"),
        ] {
            assert_eq!(
                refused(uri),
                RedirectUriError::UnsupportedScheme(scheme.into()),
                "{uri}"
            );
        }
        assert!(
            RedirectUriError::UnsupportedScheme("myapp".into())
                .to_string()
                .contains("com.example.app:/callback")
        );
    }

    #[test]
    fn refuses_out_of_band() {
        assert_eq!(
            refused("urn:ietf:wg:oauth:2.0:oob"),
            RedirectUriError::OutOfBand
        );
        assert_eq!(
            refused("URN:IETF:WG:OAUTH:2.0:OOB"),
            RedirectUriError::OutOfBand
        );
        assert_eq!(
            refused("urn:ietf:wg:oauth:2.0:oob:auto"),
            RedirectUriError::UnsupportedScheme("urn".into())
        );
    }

    #[test]
    fn refuses_relative_and_empty() {
        assert_eq!(refused(""), RedirectUriError::Empty);
        assert!(matches!(
            refused("/callback"),
            RedirectUriError::NotAbsolute(_)
        ));
        assert!(matches!(
            refused("claude.ai/cb"),
            RedirectUriError::NotAbsolute(_)
        ));
    }

    #[test]
    fn refuses_https_without_proper_authority() {
        assert_eq!(
            refused("https:/claude.ai/cb"),
            RedirectUriError::MissingAuthority("https".into())
        );
        assert_eq!(
            refused("https:///claude.ai/cb"),
            RedirectUriError::MissingHost
        );
        assert_eq!(
            refused("http:localhost/cb"),
            RedirectUriError::MissingAuthority("http".into())
        );
    }

    #[test]
    fn refuses_whitespace_control_and_backslash() {
        for uri in [
            "https://claude.ai/cb\n",
            "https://claude.ai/c\tb",
            " https://claude.ai/cb",
            "https://claude.ai/c b",
            "https:\\\\evil.com/cb",
            "https://claude.ai/é",
        ] {
            assert_eq!(refused(uri), RedirectUriError::InvalidCharacter, "{uri:?}");
        }
    }

    #[test]
    fn length_limit() {
        let base = "https://claude.ai/";
        let at_limit = format!("{base}{}", "a".repeat(MAX_LEN - base.len()));
        ok(&at_limit);
        let over = format!("{at_limit}a");
        assert_eq!(refused(&over), RedirectUriError::TooLong(MAX_LEN + 1));
    }

    #[test]
    fn error_messages_say_what_to_fix() {
        assert_eq!(
            RedirectUriError::Fragment.to_string(),
            "redirect URI must not contain a fragment (RFC 6749 §3.1.2)"
        );
        assert!(
            RedirectUriError::HttpNotLoopback
                .to_string()
                .contains("use https")
        );
        assert!(
            RedirectUriError::MissingPathOrAuthority("com.example.app".into())
                .to_string()
                .contains("com.example.app:/callback")
        );
    }

    // --- matching ---

    #[test]
    fn exact_match_against_any_registered() {
        let r = reg(&[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ]);
        assert!(matches(&r, "cursor://anysphere.cursor-mcp/oauth/callback"));
        assert!(matches(
            &r,
            "https://www.cursor.com/agents/mcp/oauth/callback"
        ));
        assert!(matches(&r, "http://localhost:8787/callback"));
        assert!(!matches(
            &r,
            "https://www.cursor.com/agents/mcp/oauth/callback/x"
        ));
        assert!(!matches(&[], "http://localhost:8787/callback"));
    }

    #[test]
    fn loopback_port_is_ignored() {
        let r = reg(&["http://127.0.0.1:33418/"]);
        assert!(matches(&r, "http://127.0.0.1:33418/"));
        assert!(matches(&r, "http://127.0.0.1:51234/"));
        assert!(matches(&r, "http://127.0.0.1/"));
        let r = reg(&["http://localhost/oauth/callback"]);
        assert!(matches(&r, "http://localhost:6274/oauth/callback"));
        let r = reg(&["http://[::1]:1/cb?x=1"]);
        assert!(matches(&r, "http://[::1]:65535/cb?x=1"));
    }

    #[test]
    fn loopback_path_query_and_host_must_match() {
        let r = reg(&["http://localhost:8787/callback"]);
        assert!(!matches(&r, "http://localhost:9999/other"));
        assert!(!matches(&r, "http://localhost:9999/callback/"));
        assert!(!matches(&r, "http://localhost:9999/Callback"));
        assert!(!matches(&r, "http://localhost:9999/callback?x=1"));
        assert!(!matches(&r, "http://localhost:9999/callback#x"));
        // Same machine, different spelling: not the same host.
        assert!(!matches(&r, "http://127.0.0.1:8787/callback"));
        assert!(!matches(&r, "http://[::1]:8787/callback"));
        // Not the loopback exception: https, non-loopback hosts, userinfo, bad ports.
        assert!(!matches(&r, "https://localhost:8787/callback"));
        assert!(!matches(&r, "http://localhost.evil.com:8787/callback"));
        assert!(!matches(&r, "http://localhost.evil.com/callback"));
        assert!(!matches(&r, "http://evil@localhost:8787/callback"));
        assert!(!matches(&r, "http://localhost:99999/callback"));
        assert!(!matches(&r, "http://localhost:80a/callback"));
    }

    #[test]
    fn localhost_evil_com_is_not_loopback() {
        let r = reg(&["http://localhost/cb"]);
        assert!(!matches(&r, "http://localhost.evil.com/cb"));
        assert!(!loopback_equivalent(
            "http://localhost.evil.com/cb",
            "http://localhost.evil.com:1/cb"
        ));
        assert_eq!(
            validate_for_registration("http://localhost.evil.com", true),
            Err(RedirectUriError::HttpNotLoopback)
        );
    }

    #[test]
    fn non_loopback_is_exact() {
        let r = reg(&["https://claude.ai/api/mcp/auth_callback"]);
        assert!(matches(&r, "https://claude.ai/api/mcp/auth_callback"));
        assert!(!matches(&r, "https://claude.ai:443/api/mcp/auth_callback"));
        assert!(!matches(&r, "https://claude.ai/api/mcp/auth_callback/evil"));
        assert!(!matches(&r, "https://claude.ai/api/mcp/auth_callback?x=1"));
        assert!(!matches(&r, "https://claude.ai/api/mcp/AUTH_CALLBACK"));
        assert!(!matches(&r, "http://claude.ai/api/mcp/auth_callback"));
        assert!(!matches(&r, "https://claude.ai/api/mcp"));
        // *.localhost gets no port exception.
        let r = reg(&["http://app.localhost:3000/cb"]);
        assert!(!matches(&r, "http://app.localhost:3001/cb"));
    }

    // --- consent display ---

    #[test]
    fn redirect_host_for_display() {
        assert_eq!(
            redirect_host("https://claude.ai/api/mcp/auth_callback"),
            "claude.ai"
        );
        assert_eq!(redirect_host("https://example.com:443/cb"), "example.com");
        assert_eq!(
            redirect_host("https://example.com:8443/cb"),
            "example.com:8443"
        );
        assert_eq!(
            redirect_host("http://localhost:8787/callback"),
            "localhost:8787"
        );
        assert_eq!(redirect_host("http://[::1]:9/cb"), "[::1]:9");
        assert_eq!(redirect_host("http://127.0.0.1/"), "127.0.0.1");
        assert_eq!(
            redirect_host("cursor://anysphere.cursor-mcp/oauth/callback"),
            "cursor:"
        );
        assert_eq!(redirect_host("com.example.app:/cb"), "com.example.app:");
        assert_eq!(redirect_host("vscode://"), "vscode:");
    }

    // --- building the redirect ---

    #[test]
    fn append_to_uri_without_query() {
        assert_eq!(
            append_query(
                "https://claude.ai/api/mcp/auth_callback",
                &[
                    ("code", "abc"),
                    ("state", "x y&z"),
                    ("iss", "https://coder.example.com")
                ]
            ),
            "https://claude.ai/api/mcp/auth_callback?code=abc&state=x+y%26z&iss=https%3A%2F%2Fcoder.example.com"
        );
    }

    #[test]
    fn append_keeps_registered_query_verbatim() {
        assert_eq!(
            append_query("https://example.com/cb?tenant=a%20b&x", &[("code", "c")]),
            "https://example.com/cb?tenant=a%20b&x&code=c"
        );
    }

    #[test]
    fn append_removes_injected_response_params() {
        assert_eq!(
            append_query(
                "https://example.com/cb?code=evil&keep=1&state=s&error=e&error_description=d&iss=i&error_uri=u",
                &[("code", "real")]
            ),
            "https://example.com/cb?keep=1&code=real"
        );
        // Encoded names are decoded before the comparison.
        assert_eq!(
            append_query("https://example.com/cb?%63ode=evil", &[("code", "real")]),
            "https://example.com/cb?code=real"
        );
    }

    #[test]
    fn append_to_private_use_and_loopback() {
        assert_eq!(
            append_query(
                "cursor://anysphere.cursor-mcp/oauth/callback",
                &[("code", "c"), ("state", "s")]
            ),
            "cursor://anysphere.cursor-mcp/oauth/callback?code=c&state=s"
        );
        assert_eq!(
            append_query("com.example.app:/cb", &[("error", "access_denied")]),
            "com.example.app:/cb?error=access_denied"
        );
        assert_eq!(
            append_query("http://127.0.0.1:51234/", &[("code", "c")]),
            "http://127.0.0.1:51234/?code=c"
        );
    }

    #[test]
    fn append_edge_cases() {
        assert_eq!(append_query("https://e.com/cb?", &[]), "https://e.com/cb");
        assert_eq!(
            append_query("https://e.com/cb?a=1&&", &[("b", "2")]),
            "https://e.com/cb?a=1&b=2"
        );
        assert_eq!(
            append_query("https://e.com/cb#frag", &[("code", "c")]),
            "https://e.com/cb?code=c"
        );
        assert_eq!(
            append_query("https://e.com/cb?code=x", &[]),
            "https://e.com/cb"
        );
    }
}

/// Property tests: any string offered as a redirect URI, and generated loopback and https URIs.
/// Registration never panics; a registered URI matches itself; the redirect back carries the
/// response parameters exactly.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    fn uri() -> impl Strategy<Value = String> {
        prop_oneof![
            hostile_text(),
            (
                prop::sample::select(vec![
                    "https://",
                    "http://",
                    "HTTP://",
                    "cursor://",
                    "com.example.app:/",
                    "javascript:"
                ]),
                prop::sample::select(vec![
                    "127.0.0.1",
                    "localhost",
                    "[::1]",
                    "example.com",
                    "a.localhost",
                    "user@example.com",
                    ""
                ]),
                prop::option::of(0u16..65535),
                "(/[a-zA-Z0-9._~%-]{0,8}){0,3}",
                prop::option::of("[a-z]{1,5}=[a-z0-9%]{0,5}(&[a-z]{1,5}=[a-z0-9]{0,5}){0,2}"),
            )
                .prop_map(|(scheme, host, port, path, query)| {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                    format!("{scheme}{host}{port}{path}{query}")
                }),
        ]
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn registration_accepts_or_explains(uri in uri(), public in any::<bool>()) {
            if timed("validate_for_registration", || validate_for_registration(&uri, public))?.is_ok() {
                prop_assert!(uri.len() <= MAX_LEN);
                prop_assert!(uri.bytes().all(|b| b.is_ascii_graphic()));
                prop_assert!(matches(std::slice::from_ref(&uri), &uri));
            }
        }

        #[test]
        fn matching_never_panics(registered in prop::collection::vec(uri(), 0..4), requested in uri()) {
            let m = timed("matches", || matches(&registered, &requested))?;
            if registered.contains(&requested) {
                prop_assert!(m);
            }
        }

        #[test]
        fn the_redirect_back_carries_the_response_exactly(
            uri in uri(),
            code in hostile_text(),
            state in hostile_text(),
        ) {
            let back = timed("append_query", || append_query(&uri, &[("code", &code), ("state", &state)]))?;
            let query = back.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let get = |k: &str| pairs.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
            prop_assert_eq!(get("code"), vec![code]);
            prop_assert_eq!(get("state"), vec![state]);
        }
    }
}
