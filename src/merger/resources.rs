//! Resources and resource templates across servers, sans-IO: one list of each, and the table
//! that routes a URI back to the server that listed it.
//!
//! Owns: [`ResourceEntry`] (one judged resource or template: its URI as the server wrote it, the
//! name policies match, its definition as agents see it), the merge (URIs are never renamed:
//! tools return `resource_link`s with them and clients quote them back; when two servers list
//! one URI, the first in configuration order wins and the other is recorded as a collision), and
//! [`ResourceRoutes`]: a URI is routed by the resources listed (exactly), else by the template
//! whose text before its first `{` is the longest prefix of the URI (first in configuration
//! order on a tie).
//! Never: talks to a connection, a clock or the sanitizer (entries arrive judged); rewrites a URI.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// One resource or template of a server, as the merger judged it.
#[derive(Clone, Debug)]
pub(crate) struct ResourceEntry {
    /// `uri` (a resource) or `uriTemplate` (a template), byte for byte.
    pub(crate) uri: String,
    /// The name policies and grants match: the server's name and the resource's `name`.
    pub(crate) subject: String,
    /// The definition agents see, serialized once; `None` when hidden.
    pub(crate) shown: Option<Arc<str>>,
    /// Why agents may not read it; `None` when they may.
    pub(crate) blocked: Option<Arc<str>>,
}

impl ResourceEntry {
    /// An entry agents see as `definition`.
    pub(crate) fn visible(uri: String, subject: String, definition: &Value) -> ResourceEntry {
        ResourceEntry {
            uri,
            subject,
            shown: Some(Arc::from(definition.to_string())),
            blocked: None,
        }
    }

    /// An entry agents neither see nor may read, with the reason.
    pub(crate) fn hidden(uri: String, subject: String, reason: String) -> ResourceEntry {
        ResourceEntry {
            uri,
            subject,
            shown: None,
            blocked: Some(Arc::from(reason)),
        }
    }

    /// The text of a template before its first `{` (the whole URI for a resource).
    fn prefix(&self) -> &str {
        self.uri.split('{').next().unwrap_or_default()
    }
}

/// Where a URI leads: the server (`C` is how to reach it) and the entry that routed it.
#[derive(Clone, Debug)]
pub struct ResourceRoute<C> {
    /// The connection that serves it.
    pub conn: C,
    /// The name policies match (`server.name` of the resource or template).
    pub subject: String,
    /// Why it may not be read; `None` when it may.
    pub blocked: Option<Arc<str>>,
}

/// A URI two servers listed: who serves it, who was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collision {
    /// The URI or URI template.
    pub uri: String,
    /// The server that serves it (first in configuration order).
    pub kept: String,
    /// The server whose entry was skipped.
    pub skipped: String,
}

/// URI → route, for every resource and template of the current view.
#[derive(Debug)]
pub struct ResourceRoutes<C> {
    exact: HashMap<String, ResourceRoute<C>>,
    /// (prefix, template URI, route), in configuration order.
    templates: Vec<(String, String, ResourceRoute<C>)>,
    collisions: Vec<Collision>,
}

impl<C> Default for ResourceRoutes<C> {
    fn default() -> Self {
        ResourceRoutes {
            exact: HashMap::new(),
            templates: Vec::new(),
            collisions: Vec::new(),
        }
    }
}

impl<C: Clone> ResourceRoutes<C> {
    /// Builds the routes from each server's resources and templates, in configuration order:
    /// `(server name, conn, resources, templates)`.
    pub(crate) fn build<'a>(
        servers: impl IntoIterator<Item = (&'a str, &'a C, &'a [ResourceEntry], &'a [ResourceEntry])>,
    ) -> ResourceRoutes<C>
    where
        C: 'a,
    {
        let mut routes = ResourceRoutes::default();
        let mut owner: HashMap<String, String> = HashMap::new();
        for (server, conn, resources, templates) in servers {
            for (entry, template) in resources
                .iter()
                .map(|e| (e, false))
                .chain(templates.iter().map(|e| (e, true)))
            {
                if let Some(kept) = owner.get(&entry.uri) {
                    routes.collisions.push(Collision {
                        uri: entry.uri.clone(),
                        kept: kept.clone(),
                        skipped: server.to_owned(),
                    });
                    continue;
                }
                owner.insert(entry.uri.clone(), server.to_owned());
                let route = ResourceRoute {
                    conn: conn.clone(),
                    subject: entry.subject.clone(),
                    blocked: entry.blocked.clone(),
                };
                if template {
                    let prefix = entry.prefix().to_owned();
                    routes.templates.push((prefix, entry.uri.clone(), route));
                } else {
                    routes.exact.insert(entry.uri.clone(), route);
                }
            }
        }
        routes
    }

    /// The route of a URI: a listed resource, else the template with the longest matching
    /// prefix. A URI that matches neither has no route.
    pub fn route(&self, uri: &str) -> Option<&ResourceRoute<C>> {
        if let Some(route) = self.exact.get(uri) {
            return Some(route);
        }
        let mut best: Option<(usize, &ResourceRoute<C>)> = None;
        for (prefix, _, route) in &self.templates {
            let longer = best.is_none_or(|(len, _)| prefix.len() > len);
            if uri.starts_with(prefix.as_str()) && longer && !prefix.is_empty() {
                best = Some((prefix.len(), route));
            }
        }
        best.map(|(_, r)| r)
    }

    /// The route of a template by its exact URI template (completion's `ref/resource`), else
    /// the route of that text as a URI.
    pub fn template(&self, uri_template: &str) -> Option<&ResourceRoute<C>> {
        self.templates
            .iter()
            .find(|(_, t, _)| t == uri_template)
            .map(|(_, _, r)| r)
            .or_else(|| self.route(uri_template))
    }

    /// Every routed URI: `(uri, is a template, route)`, resources first (in no particular
    /// order), then templates in configuration order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, bool, &ResourceRoute<C>)> {
        let exact = self.exact.iter().map(|(u, r)| (u.as_str(), false, r));
        let templates = self.templates.iter().map(|(_, t, r)| (t.as_str(), true, r));
        exact.chain(templates)
    }

    /// URIs two servers listed, in configuration order.
    pub fn collisions(&self) -> &[Collision] {
        &self.collisions
    }
}

/// Merges resources (or templates) in configuration order, a URI listed twice kept once; the
/// definitions agents see, in order.
pub(crate) fn merge<'a>(
    lists: impl IntoIterator<Item = &'a [ResourceEntry]>,
) -> Vec<&'a ResourceEntry> {
    let mut seen = std::collections::HashSet::new();
    lists
        .into_iter()
        .flatten()
        .filter(|e| seen.insert(e.uri.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(uri: &str) -> ResourceEntry {
        ResourceEntry::visible(uri.into(), format!("s.{uri}"), &json!({"uri": uri}))
    }

    #[test]
    fn a_uri_routes_exactly_else_by_the_longest_template_prefix_and_the_first_server_wins() {
        let a = [entry("file:///a.txt")];
        let a_templates = [entry("file:///{path}"), entry("db://rows/{id}")];
        let b = [entry("file:///a.txt"), entry("mem://x")];
        let b_templates = [entry("file:///logs/{name}")];
        let routes = ResourceRoutes::build([
            ("a", &"A", &a[..], &a_templates[..]),
            ("b", &"B", &b[..], &b_templates[..]),
        ]);
        let to = |uri: &str| routes.route(uri).map(|r| r.conn);
        assert_eq!(to("file:///a.txt"), Some("A"));
        assert_eq!(to("mem://x"), Some("B"));
        assert_eq!(to("file:///logs/today"), Some("B"), "longer prefix");
        assert_eq!(to("file:///etc/motd"), Some("A"));
        assert_eq!(to("db://rows/7"), Some("A"));
        assert_eq!(to("http://elsewhere"), None);
        assert_eq!(
            routes.collisions(),
            [Collision {
                uri: "file:///a.txt".into(),
                kept: "a".into(),
                skipped: "b".into()
            }]
        );
        assert_eq!(routes.template("db://rows/{id}").map(|r| r.conn), Some("A"));
        let merged = merge([&a[..], &b[..]]);
        let uris: Vec<&str> = merged.iter().map(|e| e.uri.as_str()).collect();
        assert_eq!(uris, ["file:///a.txt", "mem://x"]);
    }
}
