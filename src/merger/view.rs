//! The merge itself, sans-IO: per-server tool lists in, one namespaced view and its routes out.
//!
//! Owns: naming (`server` + separator + `tool`, the server being the config key), skipping tools
//! whose names are invalid or collide, paging the merged list, and the route table that maps a
//! merged name back to its connection and original tool name.
//! Never: talks to a connection or a clock; the merger thread owns when this runs.

use crate::config::Separator;
use crate::downstream::ConnHandle;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;

/// One server's latest tools, as the merger holds them; `C` is how to reach it (a `ConnHandle`).
#[derive(Debug)]
pub(crate) struct ServerTools<C> {
    pub(crate) name: String,
    pub(crate) conn: C,
    pub(crate) tools: Vec<Value>,
}

/// Where a merged tool name leads.
#[derive(Clone, Debug)]
pub struct Route<C = ConnHandle> {
    /// The connection that serves the tool.
    pub conn: C,
    /// The tool's name on that server.
    pub tool: String,
}

/// Merged name → route, for every callable tool of the current view.
#[derive(Debug)]
pub struct Routes<C = ConnHandle> {
    map: HashMap<String, Route<C>>,
}

impl<C> Default for Routes<C> {
    fn default() -> Self {
        Routes {
            map: HashMap::new(),
        }
    }
}

impl<C> Routes<C> {
    /// The route of a merged tool name.
    pub fn get(&self, merged_name: &str) -> Option<&Route<C>> {
        self.map.get(merged_name)
    }

    /// Number of routable tools.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no tool is routable.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A merged tool: its public name, where it goes, and its definition as agents see it.
#[derive(Debug)]
pub(crate) struct MergedTool<'a, C> {
    pub(crate) name: String,
    pub(crate) server: &'a ServerTools<C>,
    pub(crate) original: &'a str,
    pub(crate) definition: &'a Value,
}

/// The MCP tool-name rule (2025-11-25): 1 to 128 of `A-Z a-z 0-9 _ - .`.
pub(crate) fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Merges servers in order; invalid or colliding names are skipped (and logged when `warn`).
pub(crate) fn merge<'a, C: 'a>(
    servers: impl IntoIterator<Item = &'a ServerTools<C>>,
    separator: Separator,
    warn: bool,
) -> Vec<MergedTool<'a, C>> {
    let mut seen = std::collections::HashSet::new();
    let mut merged = Vec::new();
    for server in servers {
        for definition in &server.tools {
            let Some(original) = definition.get("name").and_then(Value::as_str) else {
                if warn {
                    log::warn!("server {}: a tool without a name was skipped", server.name);
                }
                continue;
            };
            if !is_valid_tool_name(original) {
                if warn {
                    log::warn!(
                        "server {}: tool {:?} has an invalid name and was skipped",
                        server.name,
                        original.chars().take(80).collect::<String>()
                    );
                }
                continue;
            }
            let name = format!("{}{}{original}", server.name, separator.as_str());
            if !seen.insert(name.clone()) {
                if warn {
                    log::warn!("tool name {name:?} is taken already; the duplicate was skipped");
                }
                continue;
            }
            merged.push(MergedTool {
                name,
                server,
                original,
                definition,
            });
        }
    }
    merged
}

/// The route table of a merged view.
pub(crate) fn routes<C: Clone>(merged: &[MergedTool<'_, C>]) -> Routes<C> {
    let map = merged
        .iter()
        .map(|t| {
            let route = Route {
                conn: t.server.conn.clone(),
                tool: t.original.to_owned(),
            };
            (t.name.clone(), route)
        })
        .collect();
    Routes { map }
}

/// A merged view, pre-serialized page by page (`{"tools":[…],"nextCursor":…}` each).
#[derive(Debug)]
pub(crate) struct MergedView {
    pages: Vec<Box<RawValue>>,
}

impl MergedView {
    /// Serializes `merged` into pages of `page_size` tools.
    pub(crate) fn build<C>(merged: &[MergedTool<'_, C>], page_size: usize) -> MergedView {
        let chunks: Vec<&[MergedTool<'_, C>]> = merged.chunks(page_size.max(1)).collect();
        let n_pages = chunks.len().max(1);
        let mut pages = Vec::with_capacity(n_pages);
        for idx in 0..n_pages {
            let chunk = chunks.get(idx).copied().unwrap_or_default();
            let tools: Vec<Value> = chunk.iter().map(renamed).collect();
            let mut page = serde_json::Map::new();
            page.insert("tools".into(), Value::Array(tools));
            if idx + 1 < n_pages {
                page.insert("nextCursor".into(), Value::String(cursor_for(idx + 1)));
            }
            match serde_json::value::to_raw_value(&page) {
                Ok(raw) => pages.push(raw),
                Err(e) => log::error!("cannot serialize a tools page: {e}"),
            }
        }
        MergedView { pages }
    }

    /// The page a cursor points at (`None` = first page); `None` for an unknown cursor.
    pub(crate) fn page(&self, cursor: Option<&str>) -> Option<&RawValue> {
        let idx = match cursor {
            None => 0,
            Some(c) => parse_cursor(c)?,
        };
        self.pages.get(idx).map(|p| &**p)
    }
}

fn renamed<C>(tool: &MergedTool<'_, C>) -> Value {
    let mut definition = tool.definition.clone();
    if let Some(obj) = definition.as_object_mut() {
        obj.insert("name".into(), Value::String(tool.name.clone()));
    }
    definition
}

fn cursor_for(page: usize) -> String {
    format!("aegis-p{page}")
}

fn parse_cursor(cursor: &str) -> Option<usize> {
    cursor.strip_prefix("aegis-p")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(name: &str, tools: Value) -> ServerTools<&'static str> {
        let tools = tools.as_array().cloned().unwrap_or_default();
        ServerTools {
            name: name.into(),
            conn: "conn",
            tools,
        }
    }

    #[test]
    fn names_are_prefixed_with_the_config_key_and_bad_names_skipped() {
        let servers = [
            server(
                "a",
                json!([{"name": "echo"}, {"name": "bad name"}, {"title": "no name"}]),
            ),
            server("b", json!([{"name": "echo"}, {"name": "x".repeat(129)}])),
        ];
        let merged = merge(&servers, Separator::Dot, false);
        let names: Vec<&str> = merged.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.echo", "b.echo"]);
        let routes = routes(&merged);
        assert_eq!(routes.get("b.echo").map(|r| r.tool.as_str()), Some("echo"));
        assert!(routes.get("echo").is_none());
    }

    #[test]
    fn colliding_names_keep_the_first() {
        let servers = [
            server("a", json!([{"name": "b_c"}])),
            server("a_b", json!([{"name": "c"}])),
        ];
        let merged = merge(&servers, Separator::Underscore, false);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].server.name, "a");
    }

    #[test]
    fn pages_chain_by_cursor_and_rename_tools() {
        let tools: Vec<Value> = (0..5).map(|i| json!({"name": format!("t{i}")})).collect();
        let servers = [server("s", Value::Array(tools))];
        let merged = merge(&servers, Separator::DoubleUnderscore, false);
        let view = MergedView::build(&merged, 2);
        let mut cursor: Option<String> = None;
        let mut names = Vec::new();
        loop {
            let page: Value =
                serde_json::from_str(view.page(cursor.as_deref()).unwrap().get()).unwrap();
            for t in page["tools"].as_array().unwrap() {
                names.push(t["name"].as_str().unwrap().to_owned());
            }
            match page.get("nextCursor") {
                Some(c) => cursor = Some(c.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        assert_eq!(names, ["s__t0", "s__t1", "s__t2", "s__t3", "s__t4"]);
        assert!(view.page(Some("bogus")).is_none());
        let empty = MergedView::build::<&str>(&[], 2);
        assert_eq!(empty.page(None).unwrap().get(), r#"{"tools":[]}"#);
    }
}
