//! Inbound delegation on `/mcp/{workspace}`: a partner gate's request carries `Aegis-Delegation`
//! (a PASETO `v4.public` token, see [`crate::delegation::token`]) instead of an agent key.
//!
//! Owns: the order of checks after the token's stateless ones (which run first): the partner's
//! workspace must be the one called, the `jti` must be new (a bounded replay cache that fails
//! closed), the tool must be inside the token's scope and the partner's grant minus both deny
//! lists, and the rate must hold (GCRA per delegator and per delegator and agent). Every decision
//! is logged at info with its reason, `iss`, `sub`, `tool` and `jti`; the caller sees only one
//! generic error per class (unauthorized, forbidden, rate limited) as a JSON-RPC error.
//! Never: tells the caller which check failed; looks a `kid` up anywhere but the partner registry;
//! admits anything when the replay cache or the rate table is full.

use super::{lock, Api};
use crate::audit::records::clip;
use crate::delegation::paserk;
use crate::delegation::rate::{Limiter, Rate, DEFAULT_MAX_KEYS};
use crate::delegation::replay::{ReplayCache, DEFAULT_CAPACITY};
use crate::delegation::token::{self, Class, Inbound, PartnerKey, Rejection, Verified};
use crate::glob::Scope;
use crate::jsonrpc::{self, Id};
use crate::store::state::Partner;
use crate::time;
use crate::time::unix_now;
use std::sync::Mutex;
use std::time::Instant;

/// The state of inbound delegation: seen token ids and rate counters.
pub(super) struct Delegation {
    replay: Mutex<ReplayCache>,
    limiter: Mutex<Limiter>,
    /// The limiter's clock starts here (monotonic milliseconds).
    started: Instant,
}

/// A caller limited to some tools: a partner that passed every check of its delegation, or an
/// agent whose identity token lists scopes.
#[derive(Debug, Clone)]
pub(super) struct Admitted {
    /// For a delegated request: the delegating org and the token's id (for the audit trail).
    pub(super) delegation: Option<(String, String)>,
    /// The token's scope.
    pub(super) scope: Scope,
    /// The partner's grant, for a delegated request.
    pub(super) grant: Option<Scope>,
}

impl Admitted {
    /// Whether the caller may see and call `tool` (every scope, every deny list).
    pub(super) fn permits(&self, tool: &str) -> bool {
        self.scope.permits(tool) && self.grant.as_ref().is_none_or(|g| g.permits(tool))
    }

    /// An agent limited to the scopes of its identity token.
    pub(super) fn scoped(scope: Scope) -> Admitted {
        Admitted {
            delegation: None,
            scope,
            grant: None,
        }
    }
}

/// A refused delegated request: what the caller is told.
#[derive(Debug)]
pub(super) struct Refused {
    /// Its class.
    pub(super) class: Class,
    /// For a rate limit: seconds to wait.
    pub(super) retry_after: Option<u64>,
}

impl Refused {
    /// The generic refusal of a tool outside the caller's scopes.
    pub(super) fn forbidden() -> Refused {
        Refused {
            class: Class::Forbidden,
            retry_after: None,
        }
    }

    /// The generic refusal of a token.
    pub(super) fn unauthorized() -> Refused {
        Refused {
            class: Class::Unauthorized,
            retry_after: None,
        }
    }

    /// The HTTP status.
    pub(super) fn status(&self) -> u16 {
        match self.class {
            Class::Unauthorized => 401,
            Class::Forbidden => 403,
            Class::RateLimited => 429,
        }
    }

    /// The JSON-RPC error line, answering `id` when the request had one.
    pub(super) fn body(&self, id: Option<&Id>) -> String {
        let (code, message) = match self.class {
            Class::Unauthorized => (jsonrpc::code::UNAUTHORIZED, "unauthorized"),
            Class::Forbidden => (jsonrpc::code::FORBIDDEN, "forbidden"),
            Class::RateLimited => (jsonrpc::code::RATE_LIMITED, "rate limited"),
        };
        let mut error = serde_json::json!({ "code": code, "message": message });
        if let Some(secs) = self.retry_after {
            error["data"] = serde_json::json!({ "retry_after": secs });
        }
        String::from_utf8_lossy(&jsonrpc::raw_error_line(id, &error.to_string())).into_owned()
    }
}

/// The bound on a partner's requests that are not tool calls (per partner org): 1 200 a minute
/// with bursts of 120.
const CHATTER: Rate = Rate {
    per_minute: 1_200,
    burst: 120,
};

/// What one delegated request brings.
pub(super) struct Request<'a> {
    pub(super) token: &'a str,
    pub(super) workspace: &'a str,
    pub(super) body: &'a [u8],
    /// `params.name` of a `tools/call` or `prompts/get`, `params.uri` of a `resources/read`,
    /// as the gate routes it (`""` if it has none), else `""`: what the token binds.
    pub(super) tool: &'a str,
    /// The name scopes and grants match (a resource's `server.name`; else `tool`).
    pub(super) subject: &'a str,
    /// Whether the message is a `tools/call` (a call without a name is refused, never let by).
    pub(super) is_call: bool,
}

impl Delegation {
    pub(super) fn new() -> Delegation {
        Delegation {
            replay: Mutex::new(ReplayCache::new(DEFAULT_CAPACITY)),
            limiter: Mutex::new(Limiter::new(DEFAULT_MAX_KEYS)),
            started: Instant::now(),
        }
    }

    /// Every check, in order; logs the decision.
    pub(super) fn check(&self, api: &Api, request: &Request<'_>) -> Result<Admitted, Refused> {
        let (partners, our_org) = {
            let store = lock(&api.store);
            (store.state().partners.clone(), store.state().org_id.clone())
        };
        let now = unix_now();
        let inbound = Inbound {
            token: request.token,
            body: request.body,
            tool: request.tool,
            our_org: our_org.as_deref().unwrap_or_default(),
            now,
        };
        // Without an org id this gate is no one's audience.
        let verified = match our_org {
            None => Err(Rejection::WrongAudience),
            Some(_) => token::verify(&inbound, |kid| key_of(&partners, kid)),
        };
        let verified = match verified {
            Ok(v) => v,
            Err(rejection) => {
                log::info!(
                    "delegation rejected ({}): iss=- sub=- tool={:?} jti=-",
                    clip(&rejection.to_string()),
                    clip(request.tool)
                );
                audit_rejection(api, request, &rejection, None);
                return Err(refused(&rejection));
            }
        };
        match self.stateful(&partners, request, &verified, now) {
            Ok(admitted) => {
                log_decision("accepted", &verified, request.tool);
                Ok(admitted)
            }
            Err(rejection) => {
                log_decision(&format!("rejected ({rejection})"), &verified, request.tool);
                audit_rejection(api, request, &rejection, Some(&verified));
                Err(refused(&rejection))
            }
        }
    }

    /// The checks that need the registry and state: workspace, replay, scope, rate.
    fn stateful(
        &self,
        partners: &std::collections::BTreeMap<String, Partner>,
        request: &Request<'_>,
        verified: &Verified,
        now: i64,
    ) -> Result<Admitted, Rejection> {
        let claims = &verified.claims;
        let partner = partners
            .get(&claims.iss)
            .ok_or_else(|| Rejection::UnknownKid(verified.kid.clone()))?;
        if partner.workspace_id != request.workspace {
            return Err(Rejection::OutOfScope);
        }
        lock(&self.replay).check_and_record(&claims.iss, &claims.jti, verified.exp, now)?;
        let admitted = Admitted {
            delegation: Some((partner.org_id.clone(), claims.jti.clone())),
            scope: claims.scope.clone(),
            grant: Some(Scope {
                allow: partner.allow.clone(),
                deny: partner.deny.clone(),
            }),
        };
        // A call must name what it calls; a completion or subscription names a prompt or
        // resource too: each only within the grant and the token's scope.
        let named = !request.subject.is_empty();
        if (request.is_call && !named) || (named && !admitted.permits(request.subject)) {
            return Err(Rejection::OutOfScope);
        }
        let now_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // A partner's rate is charged for what it does (tool calls); its protocol chatter
        // (initialize, lists, pings, notifications) has a bound of its own, generous enough
        // for any client and small enough that it cannot be used to flood the gate.
        let owned: Vec<(String, Rate)> = if request.is_call {
            let agent_rate = partner.agent_rate.unwrap_or(partner.rate);
            vec![
                (format!("org\u{0}{}", partner.org_id), partner.rate),
                (
                    format!("agent\u{0}{}\u{0}{}", partner.org_id, claims.sub),
                    agent_rate,
                ),
            ]
        } else {
            vec![(format!("chatter\u{0}{}", partner.org_id), CHATTER)]
        };
        let keys: Vec<(&str, Rate)> = owned.iter().map(|(k, r)| (k.as_str(), *r)).collect();
        if let Err(wait) = lock(&self.limiter).check_all(&keys, now_us) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Rejection::RateLimited(secs.max(1)));
        }
        Ok(admitted)
    }
}

fn refused(rejection: &Rejection) -> Refused {
    Refused {
        class: rejection.class(),
        retry_after: match rejection {
            Rejection::RateLimited(secs) => Some(*secs),
            _ => None,
        },
    }
}

/// A refused delegated call is a call decision too: it goes to the audit trail with its reason
/// (accepted ones are recorded with their outcome when answered).
fn audit_rejection(
    api: &Api,
    request: &Request<'_>,
    rejection: &Rejection,
    verified: Option<&Verified>,
) {
    let Some(audit) = &api.audit else { return };
    if !request.is_call {
        return;
    }
    let claims = verified.map(|v| &v.claims);
    audit.record(crate::audit::records::refused_delegation(
        request.workspace,
        claims.map(|c| c.sub.as_str()),
        claims.map(|c| (c.iss.as_str(), c.jti.as_str())),
        request.tool,
        request.body,
        &rejection.to_string(),
    ));
}

fn log_decision(outcome: &str, verified: &Verified, tool: &str) {
    let c = &verified.claims;
    // iss is a registered org id; the rest comes from the partner: quoted and clipped, so a
    // partner can neither flood the log nor forge lines in it.
    log::info!(
        "delegation {outcome}: iss={} sub={:?} tool={:?} jti={:?}",
        c.iss,
        clip(&c.sub),
        clip(tool),
        clip(&c.jti)
    );
}

/// The registry's key for `kid`, with its org and retirement time.
fn key_of(partners: &std::collections::BTreeMap<String, Partner>, kid: &str) -> Option<PartnerKey> {
    partners.values().find_map(|p| {
        let record = p.keys.iter().find(|k| k.kid == kid)?;
        let key = paserk::decode(&record.public_key).ok()?;
        // An unreadable not_after was refused at registration; treat one as already past.
        let not_after = record
            .not_after
            .as_ref()
            .map(|text| time::parse(text).unwrap_or(i64::MIN));
        Some(PartnerKey {
            org_id: p.org_id.clone(),
            key,
            not_after,
        })
    })
}
