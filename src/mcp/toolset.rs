//! Toolsets, chosen with `?toolset=` as Coder does.

/// Which tools a connection sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolset {
    /// Every workspace and template tool (the default).
    Standard,
    /// Workspace operations and discovery, without template administration.
    Workspace,
    /// Exactly `search` and `fetch`, the contract ChatGPT connectors require.
    ChatGpt,
}

impl Toolset {
    /// Reads `?toolset=`; absent or empty means standard. `Err` carries the unknown name.
    pub fn from_query(query: Option<&str>) -> Result<Toolset, String> {
        let value = query
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "toolset")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        match value.as_str() {
            "" | "standard" => Ok(Toolset::Standard),
            "workspace" => Ok(Toolset::Workspace),
            "chatgpt" => Ok(Toolset::ChatGpt),
            other => Err(other.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Toolset;

    #[test]
    fn parses_coder_toolset_names() {
        assert_eq!(Toolset::from_query(None), Ok(Toolset::Standard));
        assert_eq!(
            Toolset::from_query(Some("toolset=workspace")),
            Ok(Toolset::Workspace)
        );
        assert_eq!(
            Toolset::from_query(Some("a=b&toolset=chatgpt")),
            Ok(Toolset::ChatGpt)
        );
        assert_eq!(
            Toolset::from_query(Some("toolset=nope")),
            Err("nope".to_owned())
        );
    }
}
