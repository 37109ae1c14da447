//! The listings of a child: its tools, prompts, resources and resource templates, every page.
//!
//! Owns: each list's paging
//! within the limits on items and pages, at most one listing of a kind at a time (a change
//! mid-listing marks it to run again when it ends), at most one listing of a kind per
//! [`MIN_RELIST`], and the one [`Event::Listed`] sent when the lists the child offers are all
//! complete (the first time, once all of them are; after that, once per finished listing).
//! The first complete listing makes the connection healthy.
//! Never: lists a kind the child did not declare; sends a listing while another of its lists is
//! under way for the first time (the merger sees each child's first view whole).

use super::inflight::PendingKind;
use super::{Worker, LOG_TARGET};
use crate::downstream::{Catalog, Event, Items, Offered, Status};
use crate::json_text::JsonText;
use crate::jsonrpc::Outcome;
use crate::mcp::ListKind;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Shortest time between two listings of one kind of one child.
const MIN_RELIST: Duration = Duration::from_secs(1);

/// A listing under way: the pages so far.
#[derive(Debug, Default)]
struct Progress {
    items: Vec<JsonText>,
    pages: usize,
    /// A `list_changed` arrived mid-listing: list again when this one ends.
    again: bool,
}

/// One list of the child: its last complete items and its listing under way.
#[derive(Debug, Default)]
struct List {
    /// Shared with the merger (each listing sent hands it the same lists, not copies).
    items: Items,
    listing: Option<Progress>,
    listed_once: bool,
    /// When its last listing ended.
    last_listed: Option<Instant>,
    /// A listing deferred by [`MIN_RELIST`].
    relist_at: Option<Instant>,
}

/// The four lists of the current child and what it declared.
#[derive(Debug, Default)]
pub(super) struct Lists {
    lists: [List; 4],
    offered: Offered,
    /// Every offered list was complete once, and the merger has had the whole view.
    announced: bool,
}

impl Lists {
    /// Forgets the previous child's lists.
    pub(super) fn restart(&mut self) {
        *self = Lists::default();
    }

    /// Drops the listings under way: their child failed.
    pub(super) fn abort(&mut self) {
        for list in &mut self.lists {
            list.listing = None;
        }
    }

    /// The earliest deferred listing, if any.
    pub(super) fn relist_at(&self) -> Option<Instant> {
        self.lists.iter().filter_map(|l| l.relist_at).min()
    }

    /// The kinds whose deferred listing is due at `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<ListKind> {
        ListKind::ALL
            .into_iter()
            .filter(|k| self.list(*k).relist_at.is_some_and(|at| at <= now))
            .collect()
    }

    /// What the child declared.
    pub(super) fn offered(&self) -> Offered {
        self.offered
    }

    fn list(&self, kind: ListKind) -> &List {
        &self.lists[index(kind)]
    }

    fn list_mut(&mut self, kind: ListKind) -> &mut List {
        &mut self.lists[index(kind)]
    }

    fn catalog(&self) -> Catalog {
        let items = |k: ListKind| self.list(k).items.clone();
        Catalog {
            tools: items(ListKind::Tools),
            prompts: items(ListKind::Prompts),
            resources: items(ListKind::Resources),
            templates: items(ListKind::Templates),
            offered: self.offered,
        }
    }

    /// Every offered list complete once.
    fn complete(&self) -> bool {
        ListKind::ALL
            .into_iter()
            .all(|k| !offers(k, &self.offered) || self.list(k).listed_once)
    }
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(flatten)]
    fields: Map<String, Value>,
    #[serde(rename = "nextCursor")]
    next_cursor: Option<String>,
}

impl Worker {
    /// The child answered `initialize` declaring `offered`: list everything it offers (or, when
    /// it offers nothing, report an empty view at once).
    pub(super) fn list_all(&mut self, offered: Offered) {
        self.lists.offered = offered;
        let kinds: Vec<ListKind> = ListKind::ALL
            .into_iter()
            .filter(|k| offers(*k, &offered))
            .collect();
        if kinds.is_empty() {
            self.announce();
            return;
        }
        for kind in kinds {
            self.start_listing(kind);
        }
    }

    /// Lists `kind`, at most once per [`MIN_RELIST`]: a child flooding `list_changed` gets its
    /// changes coalesced into one listing a second. A kind the child does not offer is not
    /// listed.
    pub(super) fn start_listing(&mut self, kind: ListKind) {
        if !offers(kind, &self.lists.offered) {
            return;
        }
        let list = self.lists.list_mut(kind);
        if let Some(listing) = list.listing.as_mut() {
            listing.again = true;
            return;
        }
        let now = Instant::now();
        if let Some(allowed) = list
            .last_listed
            .map(|t| t + MIN_RELIST)
            .filter(|a| *a > now)
        {
            list.relist_at = Some(allowed);
            return;
        }
        list.relist_at = None;
        list.listing = Some(Progress::default());
        self.request_page(kind, None);
    }

    fn request_page(&mut self, kind: ListKind, cursor: Option<&str>) {
        let params = cursor.map(|c| serde_json::json!({ "cursor": c }).to_string());
        self.send_internal(
            kind.method(),
            params.as_deref(),
            PendingKind::ListPage(kind),
            self.settings.list_timeout,
        );
    }

    pub(super) fn on_list_page(&mut self, kind: ListKind, outcome: Outcome) {
        let page = match outcome {
            // A server that declares resources without templates (or answers a list it
            // declared with -32601) lists nothing of that kind; its tools still count.
            Outcome::Error(error) if kind != ListKind::Tools && super::is_not_found(&error) => {
                log::info!(
                    target: LOG_TARGET,
                    "connection {}: {} is not implemented; nothing of it is listed",
                    self.cfg.name,
                    kind.method()
                );
                Some((Vec::new(), None))
            }
            Outcome::Error(error) => {
                self.fail(format!(
                    "{} failed: {}",
                    kind.method(),
                    super::error_message(&error)
                ));
                return;
            }
            Outcome::Result(result) => parse_page(kind, &result),
        };
        let Some((items, next_cursor)) = page else {
            self.fail(format!("sent an invalid {} result", kind.method()));
            return;
        };
        let (max_items, max_pages) = (
            self.settings.max_tools_per_server,
            self.settings.max_list_pages,
        );
        let Some(listing) = self.lists.list_mut(kind).listing.as_mut() else {
            return;
        };
        listing.pages += 1;
        let room = max_items.saturating_sub(listing.items.len());
        if items.len() > room {
            log::warn!(
                target: LOG_TARGET,
                "connection {}: more than {max_items} items in {}; the rest are ignored",
                self.cfg.name,
                kind.method()
            );
        }
        listing.items.extend(items.into_iter().take(room));
        let more_pages = listing.pages < max_pages && room > 0;
        match next_cursor {
            Some(cursor) if more_pages => self.request_page(kind, Some(&cursor)),
            rest => {
                if rest.is_some() {
                    log::warn!(
                        target: LOG_TARGET,
                        "connection {}: stopped {} after {max_pages} pages",
                        self.cfg.name,
                        kind.method()
                    );
                }
                self.finish_listing(kind);
            }
        }
    }

    fn finish_listing(&mut self, kind: ListKind) {
        let list = self.lists.list_mut(kind);
        let listing = list.listing.take().unwrap_or_default();
        list.items = listing.items.into();
        list.listed_once = true;
        list.last_listed = Some(Instant::now());
        if kind == ListKind::Tools {
            let n_tools = list.items.len();
            self.handle.update(|s| s.tools = n_tools);
        }
        log::debug!(
            target: LOG_TARGET,
            "connection {}: {} listed",
            self.cfg.name,
            kind.method()
        );
        if self.lists.complete() {
            self.announce();
        }
        if listing.again {
            self.start_listing(kind);
        }
    }

    /// Sends the merger the child's whole view; the first one makes the connection healthy.
    fn announce(&mut self) {
        self.emit(Event::Listed {
            conn: self.handle.id(),
            catalog: self.lists.catalog(),
            server_info: self.handshake.server_info().clone(),
            instructions: self.handshake.instructions().map(str::to_owned),
        });
        if !self.lists.announced {
            self.lists.announced = true;
            self.policy.on_healthy();
            self.set_status(Status::Healthy, None);
        }
    }
}

/// A page's items (as their texts) and its next cursor; `None` when the result has no array
/// where the items go.
fn parse_page(kind: ListKind, result: &RawValue) -> Option<(Vec<JsonText>, Option<String>)> {
    let mut page = serde_json::from_str::<Page>(result.get()).ok()?;
    match page.fields.remove(field(kind)) {
        Some(Value::Array(items)) => {
            Some((items.iter().map(JsonText::new).collect(), page.next_cursor))
        }
        _ => None,
    }
}

/// Whether a server that declared `offered` has the list `kind`.
fn offers(kind: ListKind, offered: &Offered) -> bool {
    match kind {
        ListKind::Tools => offered.tools,
        ListKind::Prompts => offered.prompts,
        ListKind::Resources | ListKind::Templates => offered.resources,
    }
}

/// Where `kind`'s list is kept.
fn index(kind: ListKind) -> usize {
    match kind {
        ListKind::Tools => 0,
        ListKind::Prompts => 1,
        ListKind::Resources => 2,
        ListKind::Templates => 3,
    }
}

/// The field of a listing's result that holds its items.
fn field(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Tools => "tools",
        ListKind::Prompts => "prompts",
        ListKind::Resources => "resources",
        ListKind::Templates => "resourceTemplates",
    }
}
