//! Experiments: opt-in features that admins enable with `--experiments`.

use std::collections::BTreeSet;
use std::fmt;

/// A feature behind an experiment flag.
/// Variants are in name order, so sets of them list alphabetically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Experiment {
    /// The remote MCP endpoint at `/api/experimental/mcp/http`.
    McpServerHttp,
    /// The OAuth2 authorization server (`/oauth2/*`, `/.well-known/oauth-*`).
    OAuth2,
}

impl Experiment {
    pub const ALL: [Experiment; 2] = [Experiment::McpServerHttp, Experiment::OAuth2];

    pub fn name(self) -> &'static str {
        match self {
            Experiment::OAuth2 => "oauth2",
            Experiment::McpServerHttp => "mcp-server-http",
        }
    }

    /// The human name used in "requires enabling the experiment" messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Experiment::OAuth2 => "OAuth2 Provider",
            Experiment::McpServerHttp => "MCP HTTP Server",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of enabled experiments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Experiments(BTreeSet<Experiment>);

impl Experiments {
    /// Parses a comma-separated, case-insensitive list; `*` enables every known experiment.
    /// Returns the set and the names it did not know, so the caller can warn about them.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> (Self, Vec<String>) {
        let mut enabled = BTreeSet::new();
        let mut unknown = Vec::new();
        for raw in items.into_iter().flat_map(|s| s.split(',')) {
            let name = raw.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if name == "*" {
                enabled.extend(Experiment::ALL);
            } else if let Some(exp) = Experiment::from_name(&name) {
                enabled.insert(exp);
            } else {
                unknown.push(name);
            }
        }
        (Self(enabled), unknown)
    }

    pub fn of(list: &[Experiment]) -> Self {
        Self(list.iter().copied().collect())
    }

    /// Turns one on, as a flag that implies an experiment does.
    pub fn enable(&mut self, exp: Experiment) {
        self.0.insert(exp);
    }

    pub fn enabled(&self, exp: Experiment) -> bool {
        self.0.contains(&exp)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|e| e.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitive_lists_and_wildcard() {
        let (set, unknown) = Experiments::parse(["OAuth2, mcp-server-http", "bogus"]);
        assert_eq!(set.names(), vec!["mcp-server-http", "oauth2"]);
        assert_eq!(unknown, vec!["bogus".to_string()]);

        let (all, unknown) = Experiments::parse(["*"]);
        assert!(all.enabled(Experiment::OAuth2) && all.enabled(Experiment::McpServerHttp));
        assert!(unknown.is_empty());

        let (none, _) = Experiments::parse([""]);
        assert!(!none.enabled(Experiment::OAuth2));
    }
}
