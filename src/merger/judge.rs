//! Judging a server's listing: sanitize every tool, pin it, and decide what agents see of it.
//!
//! Owns: the step from raw tools to [`ToolEntry`]s: the sanitizer's verdict, the server
//! instructions' findings (which count for each of its tools), the pin hash and the pin store's
//! standing, and the rule that combines them (see [`entry_for`]).
//! Never: forwards server `instructions` to agents; never lets a held or rejected tool through
//! without an operator's approval of that exact version.

use super::view::{Namer, ToolEntry};
use crate::config::OnChange;
use crate::sanitize::{self, Context, Finding, Limits, Severity, Verdict};
use crate::store::pins::{Observation, PinStore, Pinning, Standing};
use serde_json::Value;

/// A server's last complete listing, as the connection reported it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Listing {
    pub(crate) tools: Vec<Value>,
    pub(crate) server_info: Value,
    pub(crate) instructions: Option<String>,
}

/// Sanitizes, pins and decides.
pub(crate) struct Judge {
    pub(crate) limits: Limits,
    pub(crate) workspace: String,
    pub(crate) pinning: Pinning,
    pub(crate) on_change: OnChange,
    pub(crate) namer: Namer,
    pub(crate) pins: Option<PinStore>,
}

impl Judge {
    /// Entries for `server`'s listing; `others` are the other servers' names (for shadowing).
    pub(crate) fn judge(
        &mut self,
        server: &str,
        others: &[&str],
        listing: &Listing,
    ) -> Vec<ToolEntry> {
        self.judge_many(&[(server, others, listing)])
            .pop()
            .unwrap_or_default()
    }

    /// Entries for several servers' listings at once, in order: every tool is sanitized, then
    /// the pin store is read and written once for all of them (a burst of 50 servers starting
    /// costs one pin update, not 50 rewrites of a growing file).
    pub(crate) fn judge_many(
        &mut self,
        batch: &[(&str, &[&str], &Listing)],
    ) -> Vec<Vec<ToolEntry>> {
        let observed: Vec<(&str, Vec<Observation>)> = batch
            .iter()
            .map(|(server, others, listing)| {
                (*server, self.observe_listing(server, others, listing))
            })
            .collect();
        let standings = self.standings(&observed);
        observed
            .into_iter()
            .zip(standings)
            .map(|((_, observations), standings)| self.entries(observations, standings))
            .collect()
    }

    fn observe_listing(
        &self,
        server: &str,
        others: &[&str],
        listing: &Listing,
    ) -> Vec<Observation> {
        let ctx = Context::new(others.iter().copied(), self.namer.separator.as_str());
        let instruction_findings = match &listing.instructions {
            Some(text) => sanitize::instructions(text, &self.limits, &ctx).1,
            None => Vec::new(),
        };
        listing
            .tools
            .iter()
            .map(|raw| self.observe(server, raw, listing, &ctx, &instruction_findings))
            .collect()
    }

    fn entries(&self, observations: Vec<Observation>, standings: Vec<Standing>) -> Vec<ToolEntry> {
        observations
            .into_iter()
            .zip(standings)
            .map(|(obs, standing)| {
                if matches!(standing, Standing::Changed { .. }) {
                    log::warn!(
                        "tool {} changed since it was approved: quarantined until `aegis-gate tools \
                         approve {}`",
                        obs.merged_name,
                        obs.merged_name
                    );
                }
                let merged_name = obs.merged_name.clone();
                let entry = entry_for(obs, standing, self.on_change);
                if let Some(reason) = &entry.blocked {
                    log::warn!("tool {merged_name}: {reason}");
                }
                entry
            })
            .collect()
    }

    fn observe(
        &self,
        server: &str,
        raw: &Value,
        listing: &Listing,
        ctx: &Context,
        instruction_findings: &[Finding],
    ) -> Observation {
        let mut sanitized = sanitize::sanitize_tool(raw, &self.limits, ctx);
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
            merged_name: self.namer.merged_name(server, &tool),
            tool,
            hash: sanitize::pin_hash(raw, &listing.server_info, listing.instructions.as_deref()),
            verdict: sanitized.verdict,
            raw: raw.clone(),
            clean: sanitized.clean,
            findings: sanitized.findings,
        }
    }

    /// Each server's tools' standings, in order, from one pin update.
    fn standings(&mut self, observed: &[(&str, Vec<Observation>)]) -> Vec<Vec<Standing>> {
        if let Some(pins) = self.pins.as_mut() {
            let servers: Vec<(&str, &[Observation])> =
                observed.iter().map(|(s, o)| (*s, o.as_slice())).collect();
            match pins.observe_servers(&self.workspace, &servers, self.pinning) {
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
            Some(Ok(changed)) => changed,
            Some(Err(e)) => {
                log::error!("cannot reload pins: {e}");
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
    let name = obs.tool;
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
