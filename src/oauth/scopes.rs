//! Scope negotiation: what a client is granted. A grant is requested ∩ catalog ∩ the client's
//! allowlist ∩ what the user's role allows; unknown names (claude.ai asks for `claudeai`) are
//! dropped rather than rejected (mcp-requirements Z7, D6).

use crate::domain::{Role, ScopeSet};

/// Decides what a client gets. `requested` is the `scope` parameter (absent, blank or naming
/// no known scope means the client's registered scopes, else the whole catalog); `allowlist` is
/// the client's registered scope (empty: no restriction). `None` when nothing grantable remains.
pub fn negotiate(requested: Option<&str>, allowlist: &str, role: Role) -> Option<ScopeSet> {
    let allowed = if allowlist.trim().is_empty() {
        ScopeSet::all()
    } else {
        ScopeSet::parse_known(allowlist)
    };
    // Nothing we know of requested (absent, blank, or only names like `claudeai`): the client
    // has no better idea, so it gets the default.
    let wanted = requested
        .map(ScopeSet::parse_known)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| allowed.clone());
    let granted: ScopeSet = wanted
        .intersect(&allowed)
        .iter()
        .filter(|s| s.allowed_for(role))
        .collect();
    (!granted.is_empty()).then_some(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_intersects_request_allowlist_and_role() {
        let claude = negotiate(Some("claudeai"), "", Role::Member).map(|s| s.to_wire());
        assert_eq!(
            claude.as_deref(),
            Some("user:read workspaces:read workspaces:write workspaces:exec templates:read"),
            "only unknown scopes requested: the default set"
        );

        let member_default = negotiate(None, "", Role::Member).map(|s| s.to_wire());
        assert_eq!(
            member_default.as_deref(),
            Some("user:read workspaces:read workspaces:write workspaces:exec templates:read")
        );
        let owner_default = negotiate(None, "", Role::Owner).map(|s| s.to_wire());
        assert!(owner_default.is_some_and(|s| s.ends_with("templates:write")));

        let narrowed = negotiate(
            Some("workspaces:read workspaces:exec"),
            "workspaces:read user:read",
            Role::Owner,
        );
        assert_eq!(
            narrowed.map(|s| s.to_wire()).as_deref(),
            Some("workspaces:read")
        );

        let allowlist_default = negotiate(Some("  "), "user:read", Role::Member);
        assert_eq!(
            allowlist_default.map(|s| s.to_wire()).as_deref(),
            Some("user:read")
        );

        assert_eq!(negotiate(Some("templates:write"), "", Role::Member), None);
    }
}
