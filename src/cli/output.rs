//! Output formats for client commands: aligned tables for people, JSON for scripts.

use chrono::{DateTime, Utc};
use clap::ValueEnum;

/// `--output` / `-o`, as Coder names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// Columns separated by two spaces, each as wide as its widest cell; headers upper-cased.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths.get(i).copied().unwrap_or(0);
                format!("{cell:<width$}")
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A timestamp as Coder's CLI shows one; Go's zero time (never) as "never".
pub fn timestamp(value: Option<&str>) -> String {
    match value.and_then(|v| v.parse::<DateTime<Utc>>().ok()) {
        Some(t) if t.timestamp() > 0 => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Some(_) => "never".to_owned(),
        None => String::new(),
    }
}

/// Pretty JSON for `--output json`.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["1".to_owned(), "long-name".to_owned()],
            vec!["22".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["id", "name"], &rows),
            "ID  NAME\n1   long-name\n22  x\n"
        );
    }

    #[test]
    fn timestamps_show_never_for_the_zero_time() {
        assert_eq!(timestamp(Some("0001-01-01T00:00:00Z")), "never");
        assert_eq!(
            timestamp(Some("2026-01-01T12:00:00Z")),
            "2026-01-01 12:00:00 UTC"
        );
        assert_eq!(timestamp(None), "");
    }
}
