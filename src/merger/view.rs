//! The merge itself, sans-IO: per-server judged entries in, one namespaced view and its routes out.
//!
//! Owns: naming (`server` + separator + `tool`, the server being the config key; or provider-safe
//! names) of tools and prompts alike, skipping names that collide, paging a merged list (tools,
//! prompts, resources or templates), the union of what the servers offer, and the route table
//! that maps a merged tool or prompt name back to its connection and original name, with the
//! reason when it may not be used (held, rejected, changed and hidden); resources route by URI
//! (`resources.rs`).
//! Never: talks to a connection or a clock; never decides a verdict (the merger hands in entries
//! already judged).

use super::resources::{ResourceEntry, ResourceRoutes};
use crate::config::{Naming, Separator, Settings};
use crate::downstream::{ConnHandle, Offered};
use crate::json_text::JsonText;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One tool of a server as the merger judged it.
#[derive(Clone, Debug)]
pub(crate) struct ToolEntry {
    /// The tool's name on its server.
    pub(crate) name: String,
    /// The definition agents see (sanitized, or the last approved one) serialized once, without
    /// its `name` and braces (`"description":…,"inputSchema":…`); `None` when hidden. Pages are
    /// built by splicing the merged name in front: no tool is serialized again per rebuild.
    pub(crate) shown: Option<Arc<str>>,
    /// Why an agent may not call it; `None` when it may.
    pub(crate) blocked: Option<Arc<str>>,
    /// The definition's `annotations` (hints such as `destructiveHint`), as the server claims.
    pub(crate) annotations: Option<Arc<serde_json::Map<String, Value>>>,
    /// Its `x-mcp-header` properties (a 2026-07-28 HTTP call's `Mcp-Param-*` headers).
    pub(crate) params: Option<Arc<[crate::sanitize::ParamHeader]>>,
}

impl ToolEntry {
    /// An entry agents see as `definition` (its `name` is replaced by the merged one).
    pub(crate) fn visible(name: String, definition: Value) -> ToolEntry {
        ToolEntry::visible_with_text(name, &definition).0
    }

    /// [`ToolEntry::visible`], and the whole definition's compact text (what [`JsonText::new`]
    /// writes), from one serialization: the judge threads make both, so that neither the merger
    /// thread nor the pin update serializes a definition again.
    pub(crate) fn visible_with_text(name: String, definition: &Value) -> (ToolEntry, JsonText) {
        let annotations = definition
            .get("annotations")
            .and_then(Value::as_object)
            .map(|a| Arc::new(a.clone()));
        let params = crate::sanitize::param_headers(definition);
        let params = (!params.is_empty()).then(|| Arc::from(params));
        let (text, rest) = definition
            .as_object()
            .and_then(written_without_name)
            .unwrap_or_else(|| (definition.to_string(), String::new()));
        let entry = ToolEntry {
            name,
            shown: Some(Arc::from(rest)),
            blocked: None,
            annotations,
            params,
        };
        (entry, JsonText::from_written(text))
    }

    /// An entry agents neither see nor may call, with the reason.
    pub(crate) fn hidden(name: String, reason: String) -> ToolEntry {
        ToolEntry {
            name,
            shown: None,
            blocked: Some(Arc::from(reason)),
            annotations: None,
            params: None,
        }
    }
}

/// An object's compact text (`{"k":v,…}`, as `Value` writes it) and its pairs without `name`
/// and without the braces (`"description":…,"inputSchema":…`): each pair is written once.
fn written_without_name(map: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let mut whole = Vec::with_capacity(1024);
    let mut name_pair = 0..0;
    whole.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        let start = whole.len();
        if i > 0 {
            whole.push(b',');
        }
        // Writing JSON into a Vec does not fail (its keys are strings); if it ever did, the
        // caller writes the value whole instead.
        serde_json::to_writer(&mut whole, key).ok()?;
        whole.push(b':');
        serde_json::to_writer(&mut whole, value).ok()?;
        if key == "name" {
            name_pair = start..whole.len();
        }
    }
    whole.push(b'}');
    // The pairs between the braces, the name's taken out with the comma that joins it.
    let inner = 1..whole.len() - 1;
    let mut rest = Vec::with_capacity(inner.len());
    if name_pair.is_empty() {
        rest.extend_from_slice(&whole[inner]);
    } else {
        let before = &whole[inner.start..name_pair.start];
        let after = &whole[name_pair.end..inner.end];
        // The name's pair starts with its comma unless it is first; then the next one's goes.
        let after = if before.is_empty() {
            after.strip_prefix(b",").unwrap_or(after)
        } else {
            after
        };
        rest.extend_from_slice(before);
        rest.extend_from_slice(after);
    }
    // Both are serde_json's output: UTF-8.
    Some((
        String::from_utf8(whole).ok()?,
        String::from_utf8(rest).ok()?,
    ))
}

/// One server's latest judged entries, as the merger holds them; `C` is how to reach it (a
/// `ConnHandle`).
#[derive(Debug)]
pub(crate) struct ServerTools<C> {
    pub(crate) name: String,
    pub(crate) conn: C,
    pub(crate) tools: Vec<ToolEntry>,
    /// Prompts, judged like tools (an entry's `name` is the prompt's).
    pub(crate) prompts: Vec<ToolEntry>,
    pub(crate) resources: Vec<ResourceEntry>,
    pub(crate) templates: Vec<ResourceEntry>,
    /// What the server declared.
    pub(crate) offered: Offered,
}

impl<C> ServerTools<C> {
    /// A server with nothing listed yet.
    pub(crate) fn empty(name: String, conn: C) -> ServerTools<C> {
        ServerTools {
            name,
            conn,
            tools: Vec::new(),
            prompts: Vec::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            offered: Offered::default(),
        }
    }

    /// Forgets everything it listed (its child failed for good).
    pub(crate) fn clear(&mut self) {
        self.tools.clear();
        self.prompts.clear();
        self.resources.clear();
        self.templates.clear();
    }

    /// Whether it lists anything at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.tools.is_empty()
            && self.prompts.is_empty()
            && self.resources.is_empty()
            && self.templates.is_empty()
    }
}

/// Where a merged tool name leads.
#[derive(Clone, Debug)]
pub struct Route<C = ConnHandle> {
    /// The connection that serves the tool.
    pub conn: C,
    /// The tool's name on that server.
    pub tool: String,
    /// Why the tool may not be called (held, rejected…); `None` when it may.
    pub blocked: Option<Arc<str>>,
    /// The tool's annotations as its server claims them (trusted only for trusted servers).
    pub annotations: Option<Arc<serde_json::Map<String, Value>>>,
    /// Its `x-mcp-header` properties.
    pub params: Option<Arc<[crate::sanitize::ParamHeader]>>,
}

/// Merged name → route, for every tool and prompt of the current view (blocked ones included,
/// so that a call to one gets its reason rather than "unknown tool"), URI → route for resources,
/// and what the servers offer.
#[derive(Debug)]
pub struct Routes<C = ConnHandle> {
    map: HashMap<String, Route<C>>,
    prompts: HashMap<String, Route<C>>,
    resources: ResourceRoutes<C>,
    /// Every connection of the view, with what it offers (for broadcasting a cancellation, and
    /// for what only some servers take: log levels).
    connections: Vec<(C, Offered)>,
}

impl<C> Default for Routes<C> {
    fn default() -> Self {
        Routes {
            map: HashMap::new(),
            prompts: HashMap::new(),
            resources: ResourceRoutes::default(),
            connections: Vec::new(),
        }
    }
}

impl<C> Routes<C> {
    /// The route of a merged tool name.
    pub fn get(&self, merged_name: &str) -> Option<&Route<C>> {
        self.map.get(merged_name)
    }

    /// The route of a merged prompt name.
    pub fn prompt(&self, merged_name: &str) -> Option<&Route<C>> {
        self.prompts.get(merged_name)
    }

    /// The routes of resource URIs.
    pub fn resources(&self) -> &ResourceRoutes<C> {
        &self.resources
    }

    /// Every connection of the view.
    pub fn connections(&self) -> impl Iterator<Item = &C> {
        self.connections.iter().map(|(c, _)| c)
    }

    /// Every connection of the view with what it offers.
    pub fn offers(&self) -> &[(C, Offered)] {
        &self.connections
    }

    /// What at least one server offers: the capabilities the gate can truthfully advertise.
    pub fn offered(&self) -> Offered {
        self.connections
            .iter()
            .fold(Offered::default(), |acc, (_, o)| Offered {
                tools: acc.tools || o.tools,
                prompts: acc.prompts || o.prompts,
                resources: acc.resources || o.resources,
                subscribe: acc.subscribe || o.subscribe,
                completions: acc.completions || o.completions,
                logging: acc.logging || o.logging,
            })
    }

    /// Number of callable tools.
    pub fn callable(&self) -> usize {
        self.map.values().filter(|r| r.blocked.is_none()).count()
    }
}

/// A merged tool: its public name, where it goes, and its entry.
#[derive(Debug)]
pub(crate) struct MergedTool<'a, C> {
    pub(crate) name: String,
    pub(crate) server: &'a ServerTools<C>,
    pub(crate) entry: &'a ToolEntry,
}

/// How merged names are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Namer {
    pub(crate) separator: Separator,
    pub(crate) naming: Naming,
}

impl Namer {
    /// The naming the settings ask for (separator and plain or provider-safe names).
    pub(crate) fn from_settings(settings: &Settings) -> Namer {
        Namer {
            separator: settings.separator,
            naming: settings.naming,
        }
    }

    /// The name agents see for `tool` of `server`.
    pub(crate) fn merged_name(&self, server: &str, tool: &str) -> String {
        match self.naming {
            Naming::Plain => format!("{server}{}{tool}", self.separator.as_str()),
            Naming::ProviderSafe => provider_safe(server, tool, self.separator),
        }
    }
}

/// `^[A-Za-z0-9_-]{1,64}$`: dots become `_`; a long name keeps its first 55 characters and gets
/// `_` and 8 hex digits of the SHA-256 of the full name, so shortening stays deterministic and
/// distinct names stay distinct (collisions are still checked by the merge).
fn provider_safe(server: &str, tool: &str, separator: Separator) -> String {
    let separator = match separator {
        Separator::Dot => "__",
        other => other.as_str(),
    };
    let full = format!("{server}{separator}{tool}");
    let safe: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() <= 64 {
        return safe;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hash = crate::hex::encode(digest.get(..4).unwrap_or_default());
    format!("{}_{hash}", &safe[..55])
}

/// Merges servers' tools in order; colliding names are skipped (and logged when `warn`).
pub(crate) fn merge<'a, C: 'a>(
    servers: impl IntoIterator<Item = &'a ServerTools<C>>,
    namer: Namer,
    warn: bool,
) -> Vec<MergedTool<'a, C>> {
    merge_by(servers, namer, warn, |s| &s.tools, "tool")
}

/// Merges servers' prompts in order, named as tools are.
pub(crate) fn merge_prompts<'a, C: 'a>(
    servers: impl IntoIterator<Item = &'a ServerTools<C>>,
    namer: Namer,
    warn: bool,
) -> Vec<MergedTool<'a, C>> {
    merge_by(servers, namer, warn, |s| &s.prompts, "prompt")
}

fn merge_by<'a, C: 'a>(
    servers: impl IntoIterator<Item = &'a ServerTools<C>>,
    namer: Namer,
    warn: bool,
    entries: fn(&'a ServerTools<C>) -> &'a [ToolEntry],
    what: &str,
) -> Vec<MergedTool<'a, C>> {
    let mut seen = HashSet::new();
    let mut merged = Vec::new();
    for server in servers {
        for entry in entries(server) {
            let name = namer.merged_name(&server.name, &entry.name);
            if !seen.insert(name.clone()) {
                if warn {
                    log::warn!("{what} name {name:?} is taken already; the duplicate was skipped");
                }
                continue;
            }
            merged.push(MergedTool {
                name,
                server,
                entry,
            });
        }
    }
    merged
}

/// The route table of a merged view: its tools, prompts and resources.
pub(crate) fn routes<C: Clone>(
    tools: &[MergedTool<'_, C>],
    prompts: &[MergedTool<'_, C>],
    resources: ResourceRoutes<C>,
    connections: Vec<(C, Offered)>,
) -> Routes<C> {
    let table = |merged: &[MergedTool<'_, C>]| {
        merged
            .iter()
            .map(|t| {
                let route = Route {
                    conn: t.server.conn.clone(),
                    tool: t.entry.name.clone(),
                    blocked: t.entry.blocked.clone(),
                    annotations: t.entry.annotations.clone(),
                    params: t.entry.params.clone(),
                };
                (t.name.clone(), route)
            })
            .collect()
    };
    Routes {
        map: table(tools),
        prompts: table(prompts),
        resources,
        connections,
    }
}

/// A merged view, pre-serialized page by page (`{"tools":[…],"nextCursor":…}` each, or
/// `prompts`, `resources`, `resourceTemplates`).
#[derive(Debug)]
pub(crate) struct MergedView {
    pages: Vec<Box<RawValue>>,
}

/// One item of a page: a merged name spliced in front of the rest of a definition, or a whole
/// definition (resources keep their own names).
enum Item<'a> {
    Named(&'a str, &'a str),
    Whole(&'a str),
}

impl Item<'_> {
    fn len(&self) -> usize {
        match self {
            Item::Named(n, r) => n.len() + r.len() + 16,
            Item::Whole(w) => w.len(),
        }
    }

    fn write(&self, page: &mut String) {
        match self {
            Item::Named(name, rest) => {
                page.push_str("{\"name\":");
                page.push_str(&Value::String((*name).to_owned()).to_string());
                if !rest.is_empty() {
                    page.push(',');
                    page.push_str(rest);
                }
                page.push('}');
            }
            Item::Whole(whole) => page.push_str(whole),
        }
    }
}

impl MergedView {
    /// Splices the shown tools (or prompts: `field`) of `merged` into pages of `page_size`.
    pub(crate) fn build<C>(merged: &[MergedTool<'_, C>], page_size: usize) -> MergedView {
        MergedView::named("tools", merged, page_size)
    }

    /// Like [`MergedView::build`], the list called `field`.
    pub(crate) fn named<C>(
        field: &str,
        merged: &[MergedTool<'_, C>],
        page_size: usize,
    ) -> MergedView {
        let items: Vec<Item<'_>> = merged
            .iter()
            .filter_map(|t| {
                t.entry
                    .shown
                    .as_deref()
                    .map(|rest| Item::Named(t.name.as_str(), rest))
            })
            .collect();
        MergedView::paged(field, &items, page_size)
    }

    /// The shown resources (or templates) of `entries`, as the list called `field`.
    pub(crate) fn whole(field: &str, entries: &[&ResourceEntry], page_size: usize) -> MergedView {
        let items: Vec<Item<'_>> = entries
            .iter()
            .filter_map(|e| e.shown.as_deref().map(Item::Whole))
            .collect();
        MergedView::paged(field, &items, page_size)
    }

    fn paged(field: &str, items: &[Item<'_>], page_size: usize) -> MergedView {
        let chunks: Vec<&[Item<'_>]> = items.chunks(page_size.max(1)).collect();
        let n_pages = chunks.len().max(1);
        let mut pages = Vec::with_capacity(n_pages);
        for idx in 0..n_pages {
            let chunk = chunks.get(idx).copied().unwrap_or_default();
            let mut page = String::with_capacity(32 + chunk.iter().map(Item::len).sum::<usize>());
            page.push_str("{\"");
            page.push_str(field);
            page.push_str("\":[");
            for (i, item) in chunk.iter().enumerate() {
                if i > 0 {
                    page.push(',');
                }
                item.write(&mut page);
            }
            page.push(']');
            if idx + 1 < n_pages {
                page.push_str(",\"nextCursor\":");
                page.push_str(&Value::String(cursor_for(idx + 1)).to_string());
            }
            page.push('}');
            match RawValue::from_string(page) {
                Ok(raw) => pages.push(raw),
                Err(e) => log::error!("cannot build a {field} page: {e}"),
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

fn cursor_for(page: usize) -> String {
    format!("aegis-p{page}")
}

fn parse_cursor(cursor: &str) -> Option<usize> {
    cursor.strip_prefix("aegis-p")?.parse().ok()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
