//! The permission vocabulary: scopes, which map onto MCP tools and API areas, and sets of them.
//! Every layer speaks it: OAuth grants them, services check them, the MCP tools declare them.

use super::Role;

/// One permission a client can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    UserRead,
    WorkspacesRead,
    WorkspacesWrite,
    WorkspacesExec,
    TemplatesRead,
    TemplatesWrite,
}

impl Scope {
    /// Every scope, in the order documents and consent pages list them.
    pub const ALL: [Scope; 6] = [
        Scope::UserRead,
        Scope::WorkspacesRead,
        Scope::WorkspacesWrite,
        Scope::WorkspacesExec,
        Scope::TemplatesRead,
        Scope::TemplatesWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::UserRead => "user:read",
            Scope::WorkspacesRead => "workspaces:read",
            Scope::WorkspacesWrite => "workspaces:write",
            Scope::WorkspacesExec => "workspaces:exec",
            Scope::TemplatesRead => "templates:read",
            Scope::TemplatesWrite => "templates:write",
        }
    }

    /// What the scope lets a client do, in the words the consent page uses.
    pub fn description(self) -> &'static str {
        match self {
            Scope::UserRead => "See your username, name, email address and role.",
            Scope::WorkspacesRead => "See your workspaces, their status, builds and logs.",
            Scope::WorkspacesWrite => "Create, start, stop, update and delete your workspaces.",
            Scope::WorkspacesExec => "Run commands and read and edit files inside your workspaces.",
            Scope::TemplatesRead => "See templates and the parameters they take.",
            Scope::TemplatesWrite => "Create, change and delete templates (owners only).",
        }
    }

    /// Whether the scope lets a client run code as the user or change what every workspace is
    /// built from; consent pages set these apart under a warning.
    pub fn powerful(self) -> bool {
        matches!(self, Scope::WorkspacesExec | Scope::TemplatesWrite)
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether a user with `role` may hold this scope at all.
    pub fn allowed_for(self, role: Role) -> bool {
        match self {
            Scope::TemplatesWrite => role == Role::Owner,
            _ => true,
        }
    }
}

/// A set of scopes, kept in catalog order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn all() -> Self {
        ScopeSet(Scope::ALL.to_vec())
    }

    /// Parses a space-separated list (RFC 6749 §3.3), dropping names outside the catalog.
    pub fn parse_known(raw: &str) -> Self {
        Self::from_iter(raw.split_ascii_whitespace().filter_map(Scope::parse))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(*s))
    }

    pub fn intersect(&self, other: &ScopeSet) -> ScopeSet {
        Self::from_iter(self.0.iter().copied().filter(|s| other.contains(*s)))
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The space-separated wire form.
    pub fn to_wire(&self) -> String {
        self.0
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes: Vec<Scope> = iter.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        ScopeSet(scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exec_and_template_writes_are_powerful() {
        let powerful: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| s.powerful())
            .map(|s| s.name())
            .collect();
        assert_eq!(powerful, ["workspaces:exec", "templates:write"]);
    }

    #[test]
    fn unknown_scopes_are_dropped_and_order_is_canonical() {
        let set = ScopeSet::parse_known("workspaces:exec claudeai user:read user:read");
        assert_eq!(set.to_wire(), "user:read workspaces:exec");
    }
}
