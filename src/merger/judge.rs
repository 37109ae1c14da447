//! Judging a server's listing: sanitize every tool and prompt, pin them, and decide what agents
//! see of them; sanitize every resource and template.
//!
//! Owns: the step from raw definitions to entries: the sanitizer's verdict, the server
//! instructions' findings (which count for each of its tools and prompts), the pin hash and the
//! pin store's standing, and the rule that combines them (see [`entry_for`]). A prompt is pinned
//! like a tool, under the key `prompt:NAME` ([`PROMPT_PIN`]; no tool name has a `:`), so a changed
//! prompt template is quarantined until approved, as a tool is. A resource or template is shown
//! when the sanitizer finds it clean (or only cleaned), hidden otherwise; it is not pinned.
//! Never: forwards server `instructions` to agents; never lets a held or rejected tool or prompt
//! through without an operator's approval of that exact version.

use super::resources::ResourceEntry;
use super::view::{Namer, ToolEntry};
use crate::config::OnChange;
use crate::downstream::Catalog;
use crate::json_text::JsonText;
use crate::sanitize::{self, Context, Finding, Limits, SanitizedTool, Severity, Verdict};
use crate::store::pins::{Observation, PinStore, Pinning, Standing};
use serde_json::Value;

/// The prefix of a prompt's key in the pin store and of the name `tools approve` takes for it.
pub(crate) const PROMPT_PIN: &str = "prompt:";

/// A server's last complete listing, as the connection reported it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Listing {
    pub(crate) catalog: Catalog,
    pub(crate) server_info: Value,
    pub(crate) instructions: Option<String>,
}

/// What agents see of one server's listing.
#[derive(Debug, Default)]
pub(crate) struct Judged {
    pub(crate) tools: Vec<ToolEntry>,
    pub(crate) prompts: Vec<ToolEntry>,
    pub(crate) resources: Vec<ResourceEntry>,
    pub(crate) templates: Vec<ResourceEntry>,
}

/// Sanitizes, pins and decides.
pub(crate) struct Judge {
    pub(crate) limits: Limits,
    pub(crate) workspace: String,
    pub(crate) pinning: Pinning,
    pub(crate) on_change: OnChange,
    pub(crate) namer: Namer,
    pub(crate) pins: Option<PinStore>,
    /// The last failure to read the pins again, logged once until it changes or ends (the
    /// pins are looked at every second).
    pub(crate) reload_error: Option<String>,
}

impl Judge {
    /// Entries for `server`'s listing; `others` are the other servers' names (for shadowing).
    pub(crate) fn judge(&mut self, server: &str, others: &[&str], listing: &Listing) -> Judged {
        self.judge_many(&[(server, others, listing)])
            .pop()
            .unwrap_or_default()
    }

    /// Entries for several servers' listings at once, in order: every tool and prompt is
    /// sanitized, then the pin store is read and written once for all of them (a burst of 50
    /// servers starting costs one pin update, not 50 rewrites of a growing file).
    pub(crate) fn judge_many(&mut self, batch: &[(&str, &[&str], &Listing)]) -> Vec<Judged> {
        let observed: Vec<(&str, Vec<Observation>, usize)> = batch
            .iter()
            .map(|(server, others, listing)| {
                let (observations, n_tools) = self.observe_listing(server, others, listing);
                (*server, observations, n_tools)
            })
            .collect();
        let pinned: Vec<(&str, &[Observation])> = observed
            .iter()
            .map(|(server, observations, _)| (*server, observations.as_slice()))
            .collect();
        let standings = self.standings(&pinned);
        observed
            .into_iter()
            .zip(standings)
            .zip(batch)
            .map(
                |(((server, observations, n_tools), standings), (_, others, listing))| {
                    let mut entries = self.entries(observations, standings);
                    let prompts = entries.split_off(n_tools.min(entries.len()));
                    let (resources, templates) = self.resources(server, others, &listing.catalog);
                    Judged {
                        tools: entries,
                        prompts,
                        resources,
                        templates,
                    }
                },
            )
            .collect()
    }

    /// Observations of a listing's tools, then its prompts; and how many are tools.
    fn observe_listing(
        &self,
        server: &str,
        others: &[&str],
        listing: &Listing,
    ) -> (Vec<Observation>, usize) {
        let ctx = Context::new(others.iter().copied(), self.namer.separator.as_str());
        let instruction_findings = match &listing.instructions {
            Some(text) => sanitize::instructions(text, &self.limits, &ctx).1,
            None => Vec::new(),
        };
        let catalog = &listing.catalog;
        // Each item is parsed from its text for as long as it is judged, one at a time.
        let tools = catalog.tools.iter().map(|text| {
            let raw = text.value();
            let sanitized = sanitize::sanitize_tool(&raw, &self.limits, &ctx);
            let raw = (text, &raw);
            self.observe(server, raw, "", sanitized, listing, &instruction_findings)
        });
        let prompts = catalog.prompts.iter().map(|text| {
            let raw = text.value();
            let sanitized = sanitize::sanitize_prompt(&raw, &self.limits, &ctx);
            self.observe(
                server,
                (text, &raw),
                PROMPT_PIN,
                sanitized,
                listing,
                &instruction_findings,
            )
        });
        let observations: Vec<Observation> = tools.chain(prompts).collect();
        (observations, catalog.tools.len())
    }

    /// A server's resources and templates as agents see them: clean or cleaned ones shown,
    /// anything the sanitizer holds or rejects hidden with the reason.
    fn resources(
        &self,
        server: &str,
        others: &[&str],
        catalog: &Catalog,
    ) -> (Vec<ResourceEntry>, Vec<ResourceEntry>) {
        let ctx = Context::new(others.iter().copied(), self.namer.separator.as_str());
        let judge = |text: &JsonText, template: bool| {
            let raw = &text.value();
            let field = if template { "uriTemplate" } else { "uri" };
            let uri = raw.get(field).and_then(Value::as_str).unwrap_or_default();
            let name = raw.get("name").and_then(Value::as_str).unwrap_or(uri);
            let subject = self.namer.merged_name(server, name);
            let sanitized = if template {
                sanitize::sanitize_resource_template(raw, &self.limits, &ctx)
            } else {
                sanitize::sanitize_resource(raw, &self.limits, &ctx)
            };
            let kinds = finding_kinds(&sanitized.findings);
            match sanitized.verdict {
                Verdict::Pass | Verdict::Sanitized => {
                    ResourceEntry::visible(uri.to_owned(), subject, &sanitized.clean)
                }
                Verdict::Held => {
                    let reason = format!("held by the gate's sanitizer ({kinds})");
                    // Named, not addressed: a URI can carry a credential.
                    log::warn!("resource {subject:?} of server {server}: {reason}");
                    ResourceEntry::hidden(uri.to_owned(), subject, reason)
                }
                Verdict::Rejected => {
                    let reason = format!("rejected by the gate's sanitizer ({kinds})");
                    log::warn!("resource {subject:?} of server {server}: {reason}");
                    ResourceEntry::hidden(uri.to_owned(), subject, reason)
                }
            }
        };
        let resources = catalog.resources.iter().map(|r| judge(r, false)).collect();
        let templates = catalog.templates.iter().map(|t| judge(t, true)).collect();
        (resources, templates)
    }

    fn entries(&self, observations: Vec<Observation>, standings: Vec<Standing>) -> Vec<ToolEntry> {
        observations
            .into_iter()
            .zip(standings)
            .map(|(obs, standing)| {
                let merged_name = obs.merged_name.clone();
                let what = match merged_name.strip_prefix(PROMPT_PIN) {
                    Some(name) => format!("prompt {name}"),
                    None => format!("tool {merged_name}"),
                };
                if matches!(standing, Standing::Changed { .. }) {
                    log::warn!(
                        "{what} changed since it was approved: quarantined until `aegis-gate tools \
                         approve {merged_name}`"
                    );
                }
                let prompt = merged_name.starts_with(PROMPT_PIN);
                let changed = matches!(standing, Standing::Changed { .. });
                let mut entry = entry_for(obs, standing, self.on_change);
                if prompt && changed && entry.blocked.is_none() {
                    // A prompt's template is what `prompts/get` returns: listed as approved, its
                    // changed version is never handed out.
                    entry.blocked = Some(std::sync::Arc::from(
                        "changed since it was approved: prompts/get is refused until an operator \
                         approves it",
                    ));
                }
                if let Some(reason) = &entry.blocked {
                    log::warn!("{what}: {reason}");
                }
                entry
            })
            .collect()
    }

    /// One tool's (or, with `pin_prefix` [`PROMPT_PIN`], one prompt's) observation; `raw` is its
    /// definition as listed, as text and as value.
    fn observe(
        &self,
        server: &str,
        (raw_text, raw): (&JsonText, &Value),
        pin_prefix: &str,
        mut sanitized: SanitizedTool,
        listing: &Listing,
        instruction_findings: &[Finding],
    ) -> Observation {
        if instruction_findings
            .iter()
            .any(|f| f.severity() >= Severity::Hold)
        {
            sanitized
                .findings
                .extend(instruction_findings.iter().cloned());
            let changed = sanitized.clean != *raw;
            sanitized.verdict = Verdict::from_findings(&sanitized.findings, changed);
        }
        let tool = raw
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
            .to_owned();
        Observation {
            merged_name: format!("{pin_prefix}{}", self.namer.merged_name(server, &tool)),
            tool: format!("{pin_prefix}{tool}"),
            hash: sanitize::pin_hash(raw, &listing.server_info, listing.instructions.as_deref()),
            verdict: sanitized.verdict,
            raw: raw_text.clone(),
            clean: sanitized.clean,
            findings: sanitized.findings,
        }
    }

    /// Each server's tools' standings, in order, from one pin update.
    fn standings(&mut self, observed: &[(&str, &[Observation])]) -> Vec<Vec<Standing>> {
        if let Some(pins) = self.pins.as_mut() {
            match pins.observe_servers(&self.workspace, observed, self.pinning) {
                Ok(standings) => return standings,
                // Fail closed: without the pins, nothing counts as approved.
                Err(e) => {
                    let names: Vec<&str> = observed.iter().map(|(s, _)| *s).collect();
                    log::error!(
                        "pins of servers {names:?}: {e}; treating their tools as unapproved"
                    )
                }
            }
            return observed
                .iter()
                .map(|(_, o)| o.iter().map(|_| Standing::Unapproved).collect())
                .collect();
        }
        observed
            .iter()
            .map(|(_, observations)| {
                observations
                    .iter()
                    .map(|o| {
                        if o.verdict.is_usable() && self.pinning == Pinning::TrustOnFirstUse {
                            Standing::Approved
                        } else {
                            Standing::Unapproved
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Re-reads the pin store when another process (an operator's `tools approve`) changed it.
    pub(crate) fn pins_changed(&mut self) -> bool {
        match self.pins.as_mut().map(PinStore::reload_if_changed) {
            Some(Ok(changed)) => {
                if self.reload_error.take().is_some() {
                    log::warn!("the pins can be read again");
                }
                changed
            }
            Some(Err(e)) => {
                let e = e.to_string();
                if self.reload_error.as_deref() != Some(e.as_str()) {
                    log::error!("cannot reload pins: {e}");
                    self.reload_error = Some(e);
                }
                false
            }
            None => false,
        }
    }
}

/// What agents see of one tool:
/// - rejected: nothing, and calls are refused;
/// - the approved version (clean, or held but approved by an operator): its sanitized definition;
/// - changed since approval: the last approved definition, or nothing (`on_change: hide`);
/// - never approved (held, or pinning requires approval): nothing, and calls are refused.
pub(crate) fn entry_for(obs: Observation, standing: Standing, on_change: OnChange) -> ToolEntry {
    let name = match obs.tool.strip_prefix(PROMPT_PIN) {
        Some(prompt) => prompt.to_owned(),
        None => obs.tool,
    };
    let blocked = |reason: String| ToolEntry::hidden(name.clone(), reason);
    let kinds = finding_kinds(&obs.findings);
    if obs.verdict == Verdict::Rejected {
        return blocked(format!("rejected by the gate's sanitizer ({kinds})"));
    }
    match standing {
        Standing::Approved => ToolEntry::visible(name, obs.clean),
        Standing::Changed { approved } if on_change == OnChange::ServeLastApproved => {
            ToolEntry::visible(name, approved)
        }
        Standing::Changed { .. } => blocked(format!(
            "changed since it was approved and quarantined until an operator approves it ({})",
            obs.verdict
        )),
        Standing::Unapproved if obs.verdict == Verdict::Held => {
            blocked(format!("held for review by the gate's sanitizer ({kinds})"))
        }
        Standing::Unapproved => blocked("waiting for an operator's approval".into()),
    }
}

fn finding_kinds(findings: &[Finding]) -> String {
    let mut kinds: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity() >= Severity::Hold)
        .map(|f| f.kind.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(", ")
}
