//! For `benches/gate.rs` and `benches/guard.rs` only: the merger's rebuild work (judge, merge,
//! routes, pages) run on plain listings, without the merger thread, connections or a pin file (a
//! burst is judged on the `judge` threads, as the merger judges it).
//!
//! Owns: [`rebuild_for_bench`], hidden from the docs.
//! Never: used by the gate itself; never touches the disk (pins stay in memory) or a
//! connection. It mirrors what the merger's state does and must be kept in step with it by hand.

use super::judge::{Judge, Listing};
use super::view::{self, MergedView, Namer, ServerTools};
use crate::config::Settings;
use std::time::{Duration, Instant};

/// For the bench only: judges every listing (sanitize, pin in memory, decide) the way the merger
/// thread does, then times judging the first `rejudge` servers again plus the merge, the routes
/// and the pages of the whole view. Returns the time and the number of tools listed.
#[doc(hidden)]
pub fn rebuild_for_bench(
    settings: &Settings,
    listings: &[(String, Vec<serde_json::Value>)],
    rejudge: usize,
) -> (Duration, usize) {
    let mut judge = Judge {
        limits: crate::sanitize::Limits::default(),
        workspace: "bench".into(),
        pinning: settings.pinning,
        on_change: settings.on_change,
        namer: Namer::from_settings(settings),
        pins: None,
        reload_error: None,
    };
    let names: Vec<&str> = listings.iter().map(|(n, _)| n.as_str()).collect();
    let listings: Vec<(String, Listing)> = listings
        .iter()
        .map(|(name, tools)| {
            let listing = Listing {
                catalog: crate::downstream::Catalog {
                    tools: tools.iter().map(crate::json_text::JsonText::new).collect(),
                    ..Default::default()
                },
                server_info: serde_json::json!({ "name": name }),
                instructions: None,
            };
            (name.clone(), listing)
        })
        .collect();
    // As the merger judges the listings that arrived in one turn: one batch.
    let others: Vec<Vec<&str>> = listings
        .iter()
        .map(|(name, _)| names.iter().copied().filter(|n| n != name).collect())
        .collect();
    let batch: Vec<(&str, &[&str], &Listing)> = listings
        .iter()
        .zip(&others)
        .map(|((name, listing), others)| (name.as_str(), others.as_slice(), listing))
        .collect();
    let mut servers: Vec<ServerTools<()>> = listings
        .iter()
        .zip(judge.judge_many(&batch))
        .map(|((name, _), judged)| ServerTools {
            tools: judged.tools,
            ..ServerTools::empty(name.clone(), ())
        })
        .collect();
    let again = &batch[..rejudge.min(batch.len())];
    let start = Instant::now();
    for (server, judged) in servers.iter_mut().zip(judge.judge_many(again)) {
        server.tools = judged.tools;
    }
    let merged = view::merge(&servers, Namer::from_settings(settings), false);
    let routes = view::routes(&merged, &[], Default::default(), Vec::new());
    let view = MergedView::build(&merged, settings.page_size);
    let elapsed = start.elapsed();
    let mut n_pages = 0;
    while view.page(Some(&format!("aegis-p{n_pages}"))).is_some() {
        n_pages += 1;
    }
    let n_tools = routes.callable().min(n_pages.max(1) * settings.page_size);
    (elapsed, n_tools)
}
