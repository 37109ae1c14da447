//! Inbound delegation on `/mcp/{workspace}`: a partner gate's request carries `Aegis-Delegation`
//! (a PASETO `v4.public` token, see [`crate::delegation::token`]) instead of an agent key.
//!
//! Owns: the order of checks after the token's stateless ones (which run first): the partner's
//! workspace must be the one called, the `jti` must be new (a replay cache that fails closed),
//! the tool must be inside the token's scope and the partner's grant minus both deny lists, and
//! the rate must hold (GCRA per delegator and per delegator and agent). On one node the replay
//! cache and the rate table are this process's, bounded, in memory
//! ([`crate::delegation::replay`], [`crate::delegation::rate`]); with `serve --store` they are
//! the shared store's ([`crate::store::shared::limits`]), so every replica decides alike, and
//! while the store does not answer a delegated request is refused (503, `Retry-After`), never
//! admitted. Every decision is logged at info with its reason, `iss`, `sub`, `tool` and `jti`;
//! the caller sees only one generic error per class (unauthorized, forbidden, rate limited,
//! unavailable) as a JSON-RPC error.
//! Never: tells the caller which check failed; looks a `kid` up anywhere but the partner registry;
//! admits anything when the replay cache or the rate table is full or does not answer.

use super::{lock, Api};
use crate::audit::records::clip;
use crate::delegation::paserk;
use crate::delegation::rate::{Limiter, Rate, DEFAULT_MAX_KEYS};
use crate::delegation::replay::{ReplayCache, DEFAULT_CAPACITY};
use crate::delegation::token::{self, Class, Inbound, PartnerKey, Rejection, Verified};
use crate::glob::Scope;
use crate::jsonrpc::{self, Id};
use crate::store::shared::limits::{Charge, Limits, Use};
use crate::store::shared::SharedStore;
use crate::store::state::Partner;
use crate::time;
use crate::time::unix_now;
use std::sync::Mutex;
use std::time::Instant;

/// The state of inbound delegation: seen token ids and rate counters.
pub(super) struct Delegation {
    counters: Counters,
}

/// Where the seen token ids and the rate counters are kept.
enum Counters {
    /// One node: in this process.
    Local {
        replay: Mutex<ReplayCache>,
        limiter: Mutex<Limiter>,
        /// The limiter's clock starts here (monotonic microseconds).
        started: Instant,
    },
    /// Replicas (`serve --store`): in the shared store, on its clock.
    Shared(Limits),
}

/// Why a verified request is not admitted.
enum NotAdmitted {
    /// A check refused it.
    Rejected(Rejection),
    /// The shared store, which the replay and rate checks need, did not answer.
    StoreDown(crate::store::Error),
}

impl From<Rejection> for NotAdmitted {
    fn from(rejection: Rejection) -> NotAdmitted {
        NotAdmitted::Rejected(rejection)
    }
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
    /// Why, as the caller may know it.
    kind: Kind,
    /// For a rate limit or an unavailable store: seconds to wait.
    pub(super) retry_after: Option<u64>,
}

/// The kinds of refusal a caller learns.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A check of the token, the grant or the rate refused it.
    Class(Class),
    /// The shared store did not answer: nothing was checked, nothing admitted.
    Unavailable,
}

/// Seconds a caller is told to wait when the shared store does not answer.
const UNAVAILABLE_RETRY_SECS: u64 = 1;

impl Refused {
    /// The generic refusal of a tool outside the caller's scopes.
    pub(super) fn forbidden() -> Refused {
        Refused {
            kind: Kind::Class(Class::Forbidden),
            retry_after: None,
        }
    }

    /// The generic refusal of a token.
    pub(super) fn unauthorized() -> Refused {
        Refused {
            kind: Kind::Class(Class::Unauthorized),
            retry_after: None,
        }
    }

    /// The refusal while the shared store does not answer.
    fn unavailable() -> Refused {
        Refused {
            kind: Kind::Unavailable,
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
        }
    }

    /// The HTTP status.
    pub(super) fn status(&self) -> u16 {
        match self.kind {
            Kind::Class(Class::Unauthorized) => 401,
            Kind::Class(Class::Forbidden) => 403,
            Kind::Class(Class::RateLimited) => 429,
            Kind::Unavailable => 503,
        }
    }

    /// The JSON-RPC error line, answering `id` when the request had one.
    pub(super) fn body(&self, id: Option<&Id>) -> String {
        let (code, message) = match self.kind {
            Kind::Class(Class::Unauthorized) => (jsonrpc::code::UNAUTHORIZED, "unauthorized"),
            Kind::Class(Class::Forbidden) => (jsonrpc::code::FORBIDDEN, "forbidden"),
            Kind::Class(Class::RateLimited) => (jsonrpc::code::RATE_LIMITED, "rate limited"),
            Kind::Unavailable => (
                jsonrpc::code::SERVER_UNAVAILABLE,
                "delegated requests cannot be checked now; retry later",
            ),
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
    /// In memory on one node; in `shared` when replicas share a store.
    pub(super) fn new(shared: Option<&SharedStore>) -> Delegation {
        let counters = match shared {
            None => Counters::Local {
                replay: Mutex::new(ReplayCache::new(DEFAULT_CAPACITY)),
                limiter: Mutex::new(Limiter::new(DEFAULT_MAX_KEYS)),
                started: Instant::now(),
            },
            Some(store) => Counters::Shared(Limits::new(store.clone())),
        };
        Delegation { counters }
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
            Err(NotAdmitted::Rejected(rejection)) => {
                log_decision(&format!("rejected ({rejection})"), &verified, request.tool);
                audit_rejection(api, request, &rejection, Some(&verified));
                Err(refused(&rejection))
            }
            Err(NotAdmitted::StoreDown(e)) => {
                // The store's error names its URL and cause, never a password.
                log_decision(&format!("refused ({e})"), &verified, request.tool);
                audit_refusal(
                    api,
                    request,
                    "the shared store did not answer",
                    Some(&verified),
                );
                Err(Refused::unavailable())
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
    ) -> Result<Admitted, NotAdmitted> {
        let claims = &verified.claims;
        let partner = partners
            .get(&claims.iss)
            .ok_or_else(|| Rejection::UnknownKid(verified.kid.clone()))?;
        if partner.workspace_id != request.workspace {
            return Err(Rejection::OutOfScope.into());
        }
        self.first_use(&claims.iss, &claims.jti, verified.exp, now)?;
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
            return Err(Rejection::OutOfScope.into());
        }
        self.charge(partner, &claims.sub, request.is_call)?;
        Ok(admitted)
    }

    /// The replay check: `jti` of `iss` recorded, or refused as seen before.
    fn first_use(&self, iss: &str, jti: &str, exp: i64, now: i64) -> Result<(), NotAdmitted> {
        match &self.counters {
            Counters::Local { replay, .. } => {
                Ok(lock(replay).check_and_record(iss, jti, exp, now)?)
            }
            Counters::Shared(limits) => match limits.first_use(iss, jti, exp, now) {
                Ok(Use::First) => Ok(()),
                Ok(Use::Replayed) => Err(Rejection::Replayed.into()),
                Err(e) => Err(NotAdmitted::StoreDown(e)),
            },
        }
    }

    /// The rate check of one request by agent `sub` of `partner`.
    fn charge(&self, partner: &Partner, sub: &str, is_call: bool) -> Result<(), NotAdmitted> {
        let wait = match &self.counters {
            Counters::Local {
                limiter, started, ..
            } => {
                let now_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let owned = rate_keys(partner, sub, is_call, '\u{0}');
                lock(limiter).check_all(&borrowed(&owned), now_us).err()
            }
            Counters::Shared(limits) => {
                // Readable in the store; unambiguous, as an org id holds no ':'.
                let owned = rate_keys(partner, sub, is_call, ':');
                match limits.check_all(&borrowed(&owned)) {
                    Ok(Charge::Allowed) => None,
                    Ok(Charge::Wait(wait)) => Some(wait),
                    Err(e) => return Err(NotAdmitted::StoreDown(e)),
                }
            }
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Rejection::RateLimited(secs.max(1)).into())
            }
        }
    }
}

/// The rate keys a request charges, their parts joined by `separator`. A partner's rate is
/// charged for what it does (tool calls); its protocol chatter (initialize, lists, pings,
/// notifications) has a bound of its own, generous enough for any client and small enough that
/// it cannot be used to flood the gate.
fn rate_keys(partner: &Partner, sub: &str, is_call: bool, separator: char) -> Vec<(String, Rate)> {
    let org = &partner.org_id;
    if is_call {
        let agent_rate = partner.agent_rate.unwrap_or(partner.rate);
        vec![
            (format!("org{separator}{org}"), partner.rate),
            (format!("agent{separator}{org}{separator}{sub}"), agent_rate),
        ]
    } else {
        vec![(format!("chatter{separator}{org}"), CHATTER)]
    }
}

fn borrowed(owned: &[(String, Rate)]) -> Vec<(&str, Rate)> {
    owned.iter().map(|(k, r)| (k.as_str(), *r)).collect()
}

fn refused(rejection: &Rejection) -> Refused {
    Refused {
        kind: Kind::Class(rejection.class()),
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
    audit_refusal(api, request, &rejection.to_string(), verified);
}

/// The audit record of a delegated call refused for `reason`.
fn audit_refusal(api: &Api, request: &Request<'_>, reason: &str, verified: Option<&Verified>) {
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
        reason,
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
