//! The layering of `src/` as rules: which part may import which. Every `crate::` path (and
//! `super::` path that leaves its part, and `coderd::` in `main.rs`) is checked against
//! `MAY_IMPORT`; docs/architecture.md draws the same table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The parts of the crate. Every top-level module of `src/` belongs to exactly one.
#[rustfmt::skip]
const PARTS: &[(&str, &[&str])] = &[
    ("cli",         &["main", "cli"]),
    ("app",         &["app"]),
    ("http",        &["http"]),
    ("mcp",         &["mcp"]),
    ("web",         &["web"]),
    ("service",     &["service"]),
    ("oauth",       &["oauth"]),
    ("auth",        &["auth"]),
    ("provisioner", &["provisioner"]),
    ("config",      &["config"]),
    ("audit",       &["audit"]),
    ("revocation",  &["revocation"]),
    ("metrics",     &["metrics"]),
    ("tls",         &["tls"]),
    ("store",       &["store"]),
    ("domain",      &["domain"]),
    ("agent",       &["agent"]),
    ("provisionerd", &["provisionerd"]),
    ("base",        &["lib", "clock", "secret", "ratelimit", "listen", "proptest_support"]),
];

/// What each part may import besides itself; everything else fails this test. Imports flow one
/// way, from the command line down to the domain and the base.
#[rustfmt::skip]
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("cli",         &["app", "agent", "provisionerd", "mcp", "oauth", "service", "config", "store",
                      "domain", "base"]),
    ("app",         &["http", "mcp", "web", "service", "oauth", "auth", "provisioner", "config",
                      "audit", "revocation", "metrics", "tls", "store", "domain", "base"]),
    ("http",        &["web", "service", "oauth", "auth", "audit", "metrics", "domain", "base"]),
    ("mcp",         &["web", "service", "oauth", "auth", "audit", "metrics", "domain", "base"]),
    ("web",         &["service", "oauth", "auth", "config", "audit", "metrics", "domain", "base"]),
    ("service",     &["provisioner", "audit", "revocation", "metrics", "store", "domain", "base"]),
    ("oauth",       &["audit", "revocation", "metrics", "store", "domain", "base"]),
    ("auth",        &["oauth", "revocation", "domain", "base"]),
    ("provisioner", &["domain", "base"]),
    ("config",      &["store", "domain", "base"]),
    ("audit",       &["store", "domain", "base"]),
    ("revocation",  &["store", "domain", "base"]),
    ("metrics",     &["store", "domain", "base"]),
    ("tls",         &["config", "base"]),
    ("store",       &["domain", "base"]),
    ("domain",      &["base"]),
    ("agent",       &["domain", "base"]),
    ("provisionerd", &["agent", "provisioner", "domain", "base"]),
    ("base",        &[]),
];

/// Edges that must never be allowed, and why. `MAY_IMPORT` is checked against these, so a rule
/// cannot be loosened by accident.
#[rustfmt::skip]
const NEVER: &[(&str, &str, &str)] = &[
    ("domain",      "store",       "entities know no SQL"),
    ("domain",      "service",     "entities know no use cases"),
    ("domain",      "http",        "entities know no HTTP"),
    ("store",       "service",     "SQL knows no use cases"),
    ("store",       "http",        "SQL knows no HTTP"),
    ("store",       "mcp",         "SQL knows no MCP"),
    ("http",        "mcp",         "two front doors side by side, mounted by app"),
    ("mcp",         "http",        "two front doors side by side, mounted by app"),
    ("http",        "store",       "front doors go through services"),
    ("mcp",         "store",       "front doors go through services"),
    ("oauth",       "auth",        "the issuer does not depend on the token checker"),
    ("service",     "oauth",       "permissions live in domain"),
    ("provisioner", "store",       "provisioning is not a use case"),
    ("provisioner", "service",     "provisioning knows no use cases"),
    ("agent",       "store",       "the agent runs inside workspaces, far from the database"),
    ("agent",       "service",     "the agent runs inside workspaces, far from the use cases"),
    ("agent",       "http",        "the agent speaks only the wire contract in domain::agent"),
    ("agent",       "mcp",         "the agent speaks only the wire contract in domain::agent"),
    ("agent",       "oauth",       "the agent holds no server secrets"),
    ("agent",       "auth",        "the agent holds no server secrets"),
    ("agent",       "provisioner", "the agent is provisioned, it does not provision"),
    ("provisionerd", "store",      "a daemon runs on another host, far from the database"),
    ("provisionerd", "service",    "a daemon provisions; the use cases run on the server"),
    ("provisionerd", "http",       "a daemon is a client of the server, not part of it"),
    ("provisionerd", "oauth",      "a daemon holds no server secrets"),
];

/// Imports allowed against the table, each one type and each with its reason: (importing file,
/// imported path prefix, reason). Kept to a few; an entry nothing uses any more fails the test.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

#[test]
fn imports_follow_the_layers() {
    let parts = parts_by_module();
    let allowed = allowed_edges();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut used_exceptions = BTreeSet::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap().to_path_buf();
        let shown = format!("src/{}", relative.display());
        let module = module_path(&relative);
        let from_module = module
            .first()
            .cloned()
            .unwrap_or_else(|| root_name(&relative));
        let from = part_of(&parts, &from_module, &shown);
        let text = std::fs::read_to_string(&file).unwrap();
        for import in imports(&text, &module, is_binary_root(&relative)) {
            let to = part_of(&parts, &import.top, &shown);
            if to == from || allowed.contains(&(from, to)) {
                continue;
            }
            if let Some(exception) = EXCEPTIONS
                .iter()
                .find(|(f, prefix, _)| *f == shown && import.path.starts_with(prefix))
            {
                used_exceptions.insert(exception.0.to_owned() + exception.1);
                continue;
            }
            broken.push(format!(
                "{shown}:{} imports {} ({from} -> {to} is not an allowed edge)",
                import.line, import.path
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "imports across the layers:\n{}",
        broken.join("\n")
    );
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .filter(|(f, prefix, _)| !used_exceptions.contains(&(f.to_string() + prefix)))
        .collect();
    assert!(stale.is_empty(), "exceptions nothing needs: {stale:?}");
    assert!(
        EXCEPTIONS.len() <= 4,
        "the exceptions list is for a few edges"
    );
}

#[test]
fn the_rules_are_one_way_and_keep_every_never() {
    let allowed = allowed_edges();
    for (from, to, why) in NEVER {
        assert!(
            !allowed.contains(&(*from, *to)),
            "{from} -> {to} is allowed, but never may be: {why}"
        );
    }
    let names: BTreeSet<&str> = PARTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        names,
        MAY_IMPORT.iter().map(|(p, _)| *p).collect(),
        "every part has a rule"
    );
    for (from, to) in &allowed {
        assert!(
            names.contains(to),
            "{from} may import {to}, which is no part"
        );
    }
    // A cycle would mean two parts lean on each other: take away the parts that import
    // nothing left, until none is left.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = MAY_IMPORT
        .iter()
        .map(|(p, to)| (*p, to.iter().copied().collect()))
        .collect();
    while !left.is_empty() {
        let leaves: Vec<&str> = left
            .iter()
            .filter(|(_, to)| to.is_empty())
            .map(|(p, _)| *p)
            .collect();
        assert!(!leaves.is_empty(), "the rules have a cycle among {left:?}");
        for leaf in leaves {
            left.remove(leaf);
            for to in left.values_mut() {
                to.remove(leaf);
            }
        }
    }
}

#[test]
fn the_scanner_reads_every_form_of_path() {
    let text = "use crate::domain::{Page, Scope};\n\
        use crate::{config::ServerConfig, store::{self, Store}};\n\
        use super::super::web::AppState;\n\
        // use crate::commented::Out;\n\
        const S: &str = \"crate::in_a::string\";\n\
        const R: &str = r#\"crate::in_a::raw\"#;\n\
        pub(crate) fn f<'a>(c: char) { let _ = '\"'; let _ = crate::audit::record; }\n\
        mod tests { use super::super::clock::Clock; }\n";
    let module = vec!["http".to_owned(), "oauth2".to_owned(), "form".to_owned()];
    let found: Vec<String> = imports(text, &module, false)
        .into_iter()
        .map(|i| i.top)
        .collect();
    assert_eq!(
        found,
        ["domain", "config", "store", "http", "audit", "http"],
        "super::super from http::oauth2::form is http, and from its tests module too"
    );
}

fn parts_by_module() -> BTreeMap<&'static str, &'static str> {
    let mut parts = BTreeMap::new();
    for (part, modules) in PARTS {
        for module in *modules {
            assert!(
                parts.insert(*module, *part).is_none(),
                "{module} is in two parts"
            );
        }
    }
    parts
}

fn allowed_edges() -> BTreeSet<(&'static str, &'static str)> {
    MAY_IMPORT
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |t| (*from, *t)))
        .collect()
}

fn part_of(parts: &BTreeMap<&str, &'static str>, module: &str, file: &str) -> &'static str {
    parts
        .get(module)
        .copied()
        .unwrap_or_else(|| panic!("{file}: the module {module} is in no part of PARTS"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `http/oauth2/mod.rs` is `http::oauth2`, `http/oauth2/form.rs` is `http::oauth2::form`, and
/// `lib.rs` and `main.rs` are crate roots.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return Vec::new();
    }
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    parts
}

fn root_name(relative: &Path) -> String {
    relative
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// `main.rs` is the binary's root: it reaches the library as `coderd::`.
fn is_binary_root(relative: &Path) -> bool {
    relative == Path::new("main.rs")
}

struct Import {
    line: usize,
    path: String,
    /// The top-level module the path lands in.
    top: String,
}

/// Every path that starts at the crate root, or climbs out of its module with `super`.
fn imports(text: &str, file_module: &[String], binary_root: bool) -> Vec<Import> {
    let code = strip_comments_and_literals(text);
    let tokens = tokenize(&code);
    let mut found = Vec::new();
    // Inline `mod name {` blocks nest the module path; each entry is (name, brace depth).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (line, token) = (tokens[i].0, tokens[i].1.as_str());
        match token {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.1 == "{") => {
                inline.push((tokens[i + 1].1.clone(), depth));
            }
            _ => {}
        }
        let preceded_by_path = i > 0 && tokens[i - 1].1 == "::";
        let starts_at_root = token == "crate" || (binary_root && token == "coderd");
        if preceded_by_path || !(starts_at_root || token == "super") {
            i += 1;
            continue;
        }
        let mut module: Vec<String> = file_module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        let mut j = i;
        let mut path = String::new();
        if starts_at_root {
            module.clear();
            path.push_str(token);
            j += 1;
        } else {
            // `super`, `super::super`, ...: each climbs one module.
            loop {
                module.pop();
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str("super");
                j += 1;
                let more = tokens.get(j).is_some_and(|t| t.1 == "::")
                    && tokens.get(j + 1).is_some_and(|t| t.1 == "super");
                if !more {
                    break;
                }
                j += 1;
            }
        }
        if tokens.get(j).is_none_or(|t| t.1 != "::") {
            i = j.max(i + 1);
            continue;
        }
        j += 1;
        let tops: Vec<String> = if !module.is_empty() {
            vec![module[0].clone()]
        } else if tokens.get(j).is_some_and(|t| t.1 == "{") {
            group_heads(&tokens, j)
        } else {
            tokens.get(j).map(|t| vec![t.1.clone()]).unwrap_or_default()
        };
        for top in tops {
            if top.chars().all(|c| c.is_alphanumeric() || c == '_') && top != "self" {
                found.push(Import {
                    line,
                    path: format!("{path}::{top}"),
                    top,
                });
            }
        }
        i = j;
    }
    found
}

/// The first name of each item in `{ a::B, c, d::{E, F} }`, which starts at `open`.
fn group_heads(tokens: &[(usize, String)], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (_, token) in &tokens[open..] {
        match token.as_str() {
            "{" => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => expect_head = true,
            name if depth == 1 && expect_head => {
                heads.push(name.to_owned());
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

/// Identifiers, `::` and single punctuation, with their line numbers.
fn tokenize(code: &str) -> Vec<(usize, String)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push((line, "::".to_owned()));
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            tokens.push((line, c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// Blanks out comments, string and character literals (keeping line breaks), so that only code
/// is scanned.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && raw_string_start(&chars, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(&other) => {
                        out.push(blank(other));
                        j += 1;
                    }
                }
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&other) = chars.get(i) {
                    out.push(blank(other));
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal; a lifetime (`'a`) has no closing quote.
            i += 1;
            if chars.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"` or `r#"` that is not the end of an identifier such as `for` or `br`.
fn raw_string_start(chars: &[char], at: usize) -> bool {
    let before = at.checked_sub(1).map(|b| chars[b]);
    let after_hashes = chars[at + 1..].iter().find(|c| **c != '#');
    after_hashes == Some(&'"')
        && before.is_none_or(|b| !(b.is_alphanumeric() || b == '_') || b == 'b')
}
