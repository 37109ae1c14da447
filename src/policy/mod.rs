//! Policy: per workspace, which tools an agent may call, as ordered rules over tool names.
//!
//! Owns: the policy document (`{"default", "rules": [{"match", "agents"?, "annotations"?,
//! "verdict"}], "webhooks", "approval_timeout_s"?}`), its meaning (the first rule whose pattern matches the merged tool name, and
//! whose `agents` list names the caller when it has one, decides; else `default`), and the
//! message a refused call gets, which names the rule, not the rest of the policy. Patterns are
//! [`Glob`]s: the same semantics as delegation scopes.
//! Never: lets a rule with an `agents` list match a caller the transport did not name; performs
//! I/O (the store keeps the document, the gate applies it).

use crate::glob::Glob;
use serde::{Deserialize, Serialize};

/// How long an escalated call waits for a person when the policy does not say.
pub(crate) const DEFAULT_APPROVAL_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(300);

/// What a rule (or the default) says about a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The call goes ahead.
    #[default]
    Allow,
    /// The call is refused.
    Deny,
    /// The call waits for a person's approval.
    Escalate,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The merged tool names it covers.
    #[serde(rename = "match")]
    pub pattern: Glob,
    /// The agents it covers (ids); every caller when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    /// Tool annotations the rule needs (`{"destructiveHint": true}`); only tools of servers
    /// marked trusted can match (an untrusted server's claims about itself prove nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    /// What it says.
    pub verdict: Verdict,
}

/// A workspace's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The verdict when no rule matches.
    #[serde(default)]
    pub default: Verdict,
    /// Ordered rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Where escalations are announced: signed JSON POSTs (see [`webhooks`]).
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// How long an escalated call waits for a person, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_s: Option<u64>,
}

impl Policy {
    /// How long an escalated call waits for a person.
    pub fn approval_timeout(&self) -> std::time::Duration {
        self.approval_timeout_s
            .map_or(DEFAULT_APPROVAL_TIMEOUT, |s| {
                std::time::Duration::from_secs(s.clamp(1, 86_400))
            })
    }
}

/// The outcome for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What applies.
    pub verdict: Verdict,
    /// The deciding rule's index (0-based), or `None` for the default.
    pub rule: Option<usize>,
}

/// What is known of a tool besides its name, for rules that look at annotations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts<'a> {
    /// Whether its server is marked trusted.
    pub trusted: bool,
    /// Its annotations, as its server claims them.
    pub annotations: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl Policy {
    /// The decision for `tool` called by `agent` (when the transport knows the agent), knowing
    /// nothing of the tool's annotations.
    pub fn decide(&self, tool: &str, agent: Option<&str>) -> Decision {
        self.decide_with(tool, agent, Facts::default())
    }

    /// The decision, with what is known of the tool.
    pub fn decide_with(&self, tool: &str, agent: Option<&str>, facts: Facts<'_>) -> Decision {
        let annotated = |wanted: &serde_json::Map<String, serde_json::Value>| {
            let Some(have) = facts.annotations.filter(|_| facts.trusted) else {
                return false;
            };
            wanted.iter().all(|(k, v)| have.get(k) == Some(v))
        };
        let applies = |rule: &Rule| {
            rule.pattern.matches(tool)
                && match &rule.agents {
                    None => true,
                    Some(list) => agent.is_some_and(|a| list.iter().any(|x| x == a)),
                }
                && rule.annotations.as_ref().is_none_or(annotated)
        };
        match self.rules.iter().position(applies) {
            Some(i) => Decision {
                verdict: self.rules[i].verdict,
                rule: Some(i),
            },
            None => Decision {
                verdict: self.default,
                rule: None,
            },
        }
    }

    /// The refusal message for a call this policy does not allow; `None` when it is allowed.
    pub fn refusal(&self, tool: &str, agent: Option<&str>, facts: Facts<'_>) -> Option<String> {
        let decision = self.decide_with(tool, agent, facts);
        let by = match decision.rule {
            Some(i) => format!("policy rule {} ({})", i + 1, self.rules[i].pattern.as_str()),
            None => "the policy's default".to_owned(),
        };
        let shown: String = tool.chars().take(200).collect();
        match decision.verdict {
            Verdict::Allow => None,
            Verdict::Deny => Some(format!("{shown:?} is denied by {by}")),
            // Where no approvals are kept (stdio), fail closed: nothing runs without approval.
            Verdict::Escalate => Some(format!(
                "{shown:?} needs a person's approval ({by}), and this gate keeps no approvals \
                 (serve mode does), so the call is refused"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Policy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins_and_agent_lists_need_a_named_caller() {
        let p = policy(
            r#"{"default": "allow", "rules": [
                {"match": "crm.delete_*", "verdict": "deny"},
                {"match": "crm.*", "agents": ["agent_a"], "verdict": "allow"},
                {"match": "crm.*", "verdict": "escalate"}]}"#,
        );
        assert_eq!(p.decide("crm.delete_x", Some("agent_a")).rule, Some(0));
        assert_eq!(
            p.decide("crm.read", Some("agent_a")).verdict,
            Verdict::Allow
        );
        assert_eq!(
            p.decide("crm.read", Some("agent_b")).verdict,
            Verdict::Escalate
        );
        assert_eq!(p.decide("crm.read", None).rule, Some(2));
        assert_eq!(
            p.decide("slack.post", None),
            Decision {
                verdict: Verdict::Allow,
                rule: None
            }
        );
        let none = Facts::default();
        let refused = p.refusal("crm.delete_x", None, none).unwrap();
        assert!(
            refused.contains("policy rule 1 (crm.delete_*)"),
            "{refused}"
        );
        assert!(p
            .refusal("crm.read", None, none)
            .unwrap()
            .contains("approval"));
        assert_eq!(p.refusal("crm.read", Some("agent_a"), none), None);
    }

    #[test]
    fn annotation_rules_match_only_tools_of_trusted_servers() {
        let p = policy(
            r#"{"rules": [{"match": "*.*", "annotations": {"destructiveHint": true},
                "verdict": "deny"}]}"#,
        );
        let hints: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"destructiveHint": true}"#).unwrap();
        let trusted = Facts {
            trusted: true,
            annotations: Some(&hints),
        };
        assert_eq!(
            p.decide_with("crm.drop", None, trusted).verdict,
            Verdict::Deny
        );
        let untrusted = Facts {
            trusted: false,
            ..trusted
        };
        assert_eq!(
            p.decide_with("crm.drop", None, untrusted).verdict,
            Verdict::Allow
        );
        assert_eq!(p.decide("crm.drop", None).verdict, Verdict::Allow);
    }

    #[test]
    fn bad_documents_are_refused() {
        for bad in [
            r#"{"rules": [{"match": "a.**", "verdict": "deny"}]}"#,
            r#"{"rules": [{"match": "a", "verdict": "maybe"}]}"#,
            r#"{"default": "deny", "extra": 1}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
        assert_eq!(policy("{}").default, Verdict::Allow);
    }
}
