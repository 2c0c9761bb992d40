//! The pages' stylesheet and the security headers every page carries.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The one stylesheet, inline (the policy allows no other source). Contrast: text on the accent
/// and danger colours is at least 4.5:1 in both schemes (WCAG 2.2 §1.4.3); dark mode puts dark
/// text on the lighter accent, since white on it was 2.7:1.
pub const STYLE: &str = r#"
:root { color-scheme: light dark; --fg:#1b1f24; --muted:#5b6470; --bg:#f6f7f9; --card:#fff; --line:#d9dde3; --accent:#2f6fed; --on-accent:#fff; --danger:#c62828; --link:#2457c5; }
@media (prefers-color-scheme: dark) { :root { --fg:#e8eaed; --muted:#a0a8b3; --bg:#111417; --card:#1a1e23; --line:#2c323a; --accent:#6a9bff; --on-accent:#0b1220; --danger:#ef6b6b; --link:#8fb3ff; } }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
main { max-width: 28rem; margin: 8vh auto; padding: 0 1rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:2rem; }
h1 { font-size:1.4rem; margin:0 0 .25rem; }
p.lead { color:var(--muted); margin:0 0 1.5rem; }
label { display:block; font-weight:600; margin:1rem 0 .3rem; }
input[type=text], input[type=email], input[type=password] { width:100%; padding:.6rem .7rem; border:1px solid var(--line); border-radius:8px; background:transparent; color:inherit; font:inherit; }
button, .button { display:inline-block; margin-top:1.5rem; padding:.65rem 1.2rem; border:0; border-radius:8px; background:var(--accent); color:var(--on-accent); font:inherit; font-weight:600; cursor:pointer; text-decoration:none; }
button.secondary { background:transparent; color:var(--fg); border:1px solid var(--line); }
.error { border:1px solid var(--danger); color:var(--danger); border-radius:8px; padding:.6rem .8rem; margin-bottom:1rem; }
.muted { color:var(--muted); font-size:.9rem; }
ul.plain { padding-left:1.1rem; }
.brand { font-weight:700; letter-spacing:.02em; margin-bottom:1rem; color:var(--muted); }
main.wide { max-width: 64rem; margin-top: 4vh; }
h2 { font-size:1.1rem; margin:2rem 0 .5rem; }
a { color:var(--link); }
code { font: .85rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap:anywhere; }
textarea { width:100%; min-height:5rem; padding:.6rem .7rem; border:1px solid var(--line); border-radius:8px; background:transparent; color:inherit; font: .9rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table { width:100%; border-collapse:collapse; margin:.5rem 0; }
th, td { text-align:left; vertical-align:top; padding:.55rem .5rem; border-bottom:1px solid var(--line); }
th { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap:.4rem 1.2rem; margin:1rem 0; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; }
label.check { display:flex; gap:.5rem; align-items:baseline; font-weight:400; margin:.35rem 0; }
.hint { color:var(--muted); font-size:.85rem; font-weight:400; }
.field-error { color:var(--danger); font-size:.9rem; margin:.3rem 0 0; }
.notice { border:1px solid var(--accent); border-radius:8px; padding:.6rem .8rem; margin-bottom:1rem; }
.secret { border:2px solid var(--danger); border-radius:8px; padding:.8rem 1rem; margin:1rem 0; }
.secret code { display:block; font-size:1rem; margin-top:.4rem; user-select:all; }
td form { display:inline; }
td button { margin-top:0; padding:.35rem .8rem; font-size:.9rem; }
button.danger { background:var(--danger); color:var(--on-accent); }
.item { border-top:1px solid var(--line); padding:1rem 0; }
.item h2 { margin:0; }
.item p, .item ul { margin:.3rem 0; }
.item button { margin-top:.6rem; }
td code.id { white-space:nowrap; }
nav.crumbs { margin-bottom:.75rem; font-size:.9rem; }
header.top { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1.25rem; padding:.6rem 1.25rem; background:var(--card); border-bottom:1px solid var(--line); }
header.top .brand { margin:0; color:var(--fg); text-decoration:none; font-size:1.05rem; }
header.top nav { display:flex; flex-wrap:wrap; gap:.25rem 1rem; flex:1; }
header.top nav a { color:var(--fg); text-decoration:none; padding:.2rem 0; }
header.top nav a[aria-current=page] { border-bottom:2px solid var(--accent); font-weight:600; }
header.top .who { display:flex; align-items:center; gap:.75rem; }
header.top .who button { margin:0; padding:.35rem .8rem; }
.status { font-weight:600; }
pre.log { background:var(--bg); border:1px solid var(--line); border-radius:8px; padding:.75rem; overflow:auto; max-height:28rem; font: .85rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space:pre-wrap; }
select, input[type=number], input[type=datetime-local], input[type=file] { padding:.5rem .6rem; border:1px solid var(--line); border-radius:8px; background:transparent; color:inherit; font:inherit; }
form.filters { display:flex; flex-wrap:wrap; gap:.75rem; align-items:flex-end; }
form.filters label { margin:0; }
form.filters button { margin:0; }
.actions { display:flex; flex-wrap:wrap; gap:.5rem; }
.actions form button { margin-top:0; }
.card + .card { margin-top:1rem; }
.card > h2:first-child { margin-top:0; }
fieldset { border:0; padding:0; margin:1rem 0 0; }
legend { font-weight:600; padding:0; margin-bottom:.3rem; }
.card.narrow { max-width:30rem; margin:4vh auto 0; }
.warning { border:1px solid var(--danger); border-radius:8px; padding:.6rem .8rem; margin:1rem 0; }
.warning h2 { margin-top:0; color:var(--danger); }
.app-icon { width:48px; height:48px; border-radius:8px; float:right; margin-left:1rem; }
ul.links { list-style:none; padding:0; display:grid; grid-template-columns:repeat(auto-fill, minmax(14rem, 1fr)); gap:.75rem; }
ul.links li { border:1px solid var(--line); border-radius:8px; padding:.75rem 1rem; }
ul.links a { font-weight:600; }
ul.links span { display:block; color:var(--muted); font-size:.85rem; }
"#;

/// The pages' Content-Security-Policy: no script, no frames, styles inline, images from this
/// site or over https (an application's icon on the consent page), and forms that post only to
/// this site, plus `form_action` where a form's answer redirects elsewhere.
pub fn content_security_policy(form_action: Option<&str>) -> String {
    let extra = form_action
        .map(|source| format!(" {source}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; \
         form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Adds the headers that keep pages out of frames and caches.
pub fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(None)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::content_security_policy;

    #[test]
    fn the_policy_adds_form_action_sources_after_self() {
        let base = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; \
                    form-action 'self'";
        let rest = "; frame-ancestors 'none'; base-uri 'none'";
        assert_eq!(content_security_policy(None), format!("{base}{rest}"));
        assert_eq!(
            content_security_policy(Some("https://app.example.com")),
            format!("{base} https://app.example.com{rest}")
        );
    }
}
