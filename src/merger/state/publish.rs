//! The merger's judging and publishing: a server's listing judged (its definitions sanitized and
//! pinned) once per new or changed listing, the merged view built once per turn in which it
//! changed and published as the route table, cached pages of it answered, and each list's change
//! announced once to every session. Part of [`State`], owned by the `merger` thread alone.
//!
//! Owns: `tools/list`, `prompts/list` and `resources/list` answers from the view cache, building a
//! view, re-judging servers whose pins changed on disk, publishing routes, handing freed memory
//! back after a judged burst (at most every [`TRIM_EVERY`]).
//! Never: judges a listing that did not change; blocks on a connection or a session.

use super::{Changed, State, TRIM_EVERY};
use crate::downstream::ListKind;
use crate::jsonrpc::{code, Responder};
use crate::merger::cache::Lookup;
use crate::merger::judge::Listing;
use crate::merger::request::ViewKey;
use crate::merger::resources::{self, ResourceRoutes};
use crate::merger::view::{self, MergedView, Namer};
use crate::thread::write;
use std::sync::Arc;
use std::time::Instant;

impl State {
    pub(super) fn list(&mut self, key: ViewKey, cursor: Option<&str>, responder: Responder) {
        let kind = key.kind;
        let now = Instant::now();
        let view = match self.cache.lookup(&key, now) {
            Lookup::Fresh(view) => view,
            lookup @ (Lookup::Expired | Lookup::Absent) => {
                if matches!(lookup, Lookup::Expired) {
                    // Expired: ask every child for its list again; changes arrive as events.
                    for server in &self.servers {
                        server.tools.conn.refresh_tools();
                    }
                }
                let view = Arc::new(self.build_view(kind));
                self.cache.insert(key, Arc::clone(&view), now);
                view
            }
        };
        match view.page(cursor) {
            Some(page) => responder.result(page.get()),
            None => responder.error(code::INVALID_PARAMS, "invalid cursor"),
        }
    }

    pub(super) fn build_view(&self, kind: ListKind) -> MergedView {
        let lists = self.servers.iter().map(|s| &s.tools);
        let namer = Namer::from_settings(&self.settings);
        let page_size = self.settings.page_size;
        match kind {
            ListKind::Tools => MergedView::build(&view::merge(lists, namer, false), page_size),
            ListKind::Prompts => MergedView::named(
                "prompts",
                &view::merge_prompts(lists, namer, false),
                page_size,
            ),
            ListKind::Resources => {
                let merged = resources::merge(lists.map(|s| s.resources.as_slice()));
                MergedView::whole("resources", &merged, page_size)
            }
            ListKind::Templates => {
                let merged = resources::merge(lists.map(|s| s.templates.as_slice()));
                MergedView::whole("resourceTemplates", &merged, page_size)
            }
        }
    }

    /// Marks one server's listing to be judged again (sanitize, pin, decide) at the turn's end.
    pub(super) fn judge_server(&mut self, idx: usize) {
        if let Some(server) = self.servers.get_mut(idx) {
            server.stale = true;
        }
    }

    /// Judges every server marked this turn, with one pin update for all of them; false when
    /// none was.
    pub(super) fn judge_stale(&mut self) -> bool {
        let names: Vec<String> = self.servers.iter().map(|s| s.tools.name.clone()).collect();
        let stale: Vec<usize> = (0..self.servers.len())
            .filter(|i| self.servers.get(*i).is_some_and(|s| s.stale))
            .collect();
        if stale.is_empty() {
            return false;
        }
        let others: Vec<Vec<&str>> = stale
            .iter()
            .map(|i| {
                names
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| j != i)
                    .map(|(_, n)| n.as_str())
                    .collect()
            })
            .collect();
        let batch: Vec<(&str, &[&str], &Listing)> = stale
            .iter()
            .zip(&others)
            .filter_map(|(i, others)| {
                let server = self.servers.get(*i)?;
                Some((
                    server.tools.name.as_str(),
                    others.as_slice(),
                    &server.listing,
                ))
            })
            .collect();
        let judged = self.judge.judge_many(&batch);
        for (i, judged) in stale.into_iter().zip(judged) {
            if let Some(server) = self.servers.get_mut(i) {
                server.tools.tools = judged.tools;
                server.tools.prompts = judged.prompts;
                server.tools.resources = judged.resources;
                server.tools.templates = judged.templates;
                server.stale = false;
            }
        }
        true
    }

    /// An operator changed the pins (`tools approve`): judge every server again.
    pub(super) fn on_pins_changed(&mut self) {
        log::info!("pins changed on disk; judging every server's tools again");
        for idx in 0..self.servers.len() {
            self.judge_server(idx);
        }
        self.changed.add(Changed {
            tools: true,
            prompts: true,
            resources: false,
        });
        self.invalidate();
    }

    /// The merged view changed: cached views go at once (a list later in this turn is built from
    /// the servers as they are now); the merge and the announcement wait for the turn's end.
    pub(super) fn invalidate(&mut self) {
        self.cache.clear();
        self.dirty = true;
    }

    /// Merges the view once, publishes the new routes and tells every session which lists
    /// changed.
    pub(super) fn publish(&mut self) {
        self.dirty = false;
        let judged = self.judge_stale();
        let namer = Namer::from_settings(&self.settings);
        let tools = view::merge(self.servers.iter().map(|s| &s.tools), namer, true);
        let prompts = view::merge_prompts(self.servers.iter().map(|s| &s.tools), namer, true);
        let resources = ResourceRoutes::build(self.servers.iter().map(|s| {
            let t = &s.tools;
            (
                t.name.as_str(),
                &t.conn,
                t.resources.as_slice(),
                t.templates.as_slice(),
            )
        }));
        for c in resources.collisions() {
            log::warn!(
                "resource {:?} is listed by servers {} and {}; {} serves it",
                c.uri,
                c.kept,
                c.skipped,
                c.kept
            );
        }
        let connections = self
            .servers
            .iter()
            .map(|s| (s.tools.conn.clone(), s.tools.offered))
            .collect();
        let routes = Arc::new(view::routes(&tools, &prompts, resources, connections));
        log::info!("merged view: {} callable tools", routes.callable());
        *write(&self.routes) = routes;
        if judged && self.trimmed.is_none_or(|t| t.elapsed() >= TRIM_EVERY) {
            // Judging a burst (the pin file read and written, every definition parsed and
            // cleaned) freed far more than it kept.
            crate::sys::release_free_memory();
            self.trimmed = Some(Instant::now());
        }
        let changed = std::mem::take(&mut self.changed);
        // A full queue loses a notification, not the subscription.
        for (is, kind, method) in [
            (
                changed.tools,
                ListKind::Tools,
                "notifications/tools/list_changed",
            ),
            (
                changed.prompts,
                ListKind::Prompts,
                "notifications/prompts/list_changed",
            ),
            (
                changed.resources,
                ListKind::Resources,
                "notifications/resources/list_changed",
            ),
        ] {
            if is {
                let gone = self.sessions.tell_changed(kind, method);
                self.tell_servers("resources/unsubscribe", gone);
            }
        }
    }
}
