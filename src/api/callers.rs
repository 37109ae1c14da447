//! Callers: who is calling `/mcp/…`, from the request's headers, and what that caller may use.
//!
//! Owns: the [`Caller`] kinds (an agent key bound to the workspace, a partner gate's delegation
//! token, an identity provider's token with its scopes, a delegation header where no partner is
//! bound), the caches of each workspace's JWT verifier and introspection client (built from the
//! stored identity settings on first use), and the identity a caller has in the session table.
//! Never: takes identity from a message's content (`clientInfo`, arguments, `_meta`); tells an
//! unauthenticated caller which workspaces exist (an unbound delegation header is refused
//! before anything else); logs a token.

use super::delegated::{self, Admitted};
use super::http::{self, ApiError};
use super::Api;
use crate::crypto::secret::{hash_secret, hashes_equal};
use crate::delegation;
use crate::http::Request;
use crate::identity::introspect::Introspector;
use crate::identity::jwt::Verifier;
use crate::identity::{Authenticate, Identity};
use crate::jsonrpc::Id;
use crate::launch::binding;
use crate::store::state::IdentityConfig;
use crate::thread::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who is calling, as far as the headers tell.
pub(super) enum Caller {
    /// An agent of the workspace, by its key (its id).
    Agent(String),
    /// A partner's gate: its delegation token, checked against each request's body.
    Partner(String),
    /// A delegation header on a workspace no partner is bound to: refused before anything else.
    Unbound,
    /// An agent named by a verified identity token (JWT), limited to its scopes when it has some.
    Token {
        agent: String,
        scope: Option<crate::glob::Scope>,
    },
}

/// A request refused on who sent it: a JSON-RPC error with 401, 403 or 429.
pub(super) struct Refusal {
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) retry_after: Option<u64>,
}

impl Refusal {
    fn of(refused: &delegated::Refused, id: Option<&Id>) -> Refusal {
        Refusal {
            status: refused.status(),
            body: refused.body(id),
            retry_after: refused.retry_after,
        }
    }

    /// A delegation header where no partner is bound.
    pub(super) fn unbound() -> Refusal {
        Refusal::of(&delegated::Refused::unauthorized(), None)
    }
}

/// How a partner's sessions are known (as the agent id of an agent-key session).
pub(super) fn partner_caller(org: &str) -> String {
    format!("partner:{org}")
}

/// The caller of a request to `workspace`, from its headers.
pub(super) fn authenticate(
    api: &Api,
    request: &Request,
    workspace: &str,
) -> Result<Caller, ApiError> {
    // A partner's gate signs each request; its token is checked once the body is read. Before
    // that, a workspace no partner is bound to answers 401 at once, so an unverified header
    // cannot be used to learn which workspaces exist.
    if let Some(token) = request.header(delegation::token::HEADER) {
        let bound = lock(&api.store)
            .state()
            .partners
            .values()
            .any(|p| p.workspace_id == workspace);
        if !bound {
            log::info!(
                "delegation rejected (no partner for workspace {:?}): iss=- sub=- tool=- jti=-",
                workspace.chars().take(200).collect::<String>()
            );
        }
        return Ok(if bound {
            Caller::Partner(token.to_owned())
        } else {
            Caller::Unbound
        });
    }
    let key = http::bearer(request).ok_or_else(ApiError::unauthorized)?;
    let hash = hash_secret(key);
    let agent = lock(&api.store)
        .state()
        .agents
        .values()
        .find(|a| !a.revoked && a.workspace_id == workspace && hashes_equal(&a.key_hash, &hash))
        .map(|a| Caller::Agent(a.id.clone()));
    match agent {
        Some(caller) => Ok(caller),
        // Not an agent key: the workspace's identity provider may vouch for it.
        None => api
            .identity
            .verify(api, workspace, key)
            .map(|identity| Caller::Token {
                agent: format!("jwt:{}", identity.agent),
                scope: identity.scope,
            })
            .ok_or_else(ApiError::unauthorized),
    }
}

/// The workspace of the agent key a request to `/mcp` carries. A partner's gate and an identity
/// provider's token name their workspace in the path (`/mcp/{workspace}`): 404 saying so.
pub(super) fn workspace_of_key(api: &Api, request: &Request) -> Result<String, ApiError> {
    if request.header(delegation::token::HEADER).is_some() {
        return Err(ApiError::not_found(
            "a delegated request names its workspace: /mcp/{workspace}",
        ));
    }
    let key = http::bearer(request).ok_or_else(ApiError::unauthorized)?;
    let hash = hash_secret(key);
    lock(&api.store)
        .state()
        .agents
        .values()
        .find(|a| !a.revoked && hashes_equal(&a.key_hash, &hash))
        .map(|a| a.workspace_id.clone())
        .ok_or_else(|| {
            ApiError::new(
                401,
                "unauthorized",
                "missing or invalid agent key (a token from an identity provider names its \
                 workspace: /mcp/{workspace})",
            )
        })
}

/// What the caller asks of the workspace in one request: the body, the request's id, and the
/// tool, prompt or resource it calls (for a `tools/call`, `prompts/get` or `resources/read`).
pub(super) struct Asked<'a> {
    pub(super) body: &'a [u8],
    pub(super) id: Option<&'a Id>,
    /// The name (a resource's URI) as the request says it, which a delegation token binds.
    pub(super) tool: Option<&'a str>,
    /// The name scopes and grants match: the tool or prompt name, a resource's `server.name`.
    pub(super) subject: Option<&'a str>,
}

/// The caller's identity for the session table, and for a partner or a scoped token what it may
/// use. Agents are known already; a partner's token is checked here, with the exact body and
/// the tool called.
pub(super) fn identify(
    api: &Api,
    caller: &Caller,
    workspace: &str,
    asked: &Asked<'_>,
) -> Result<(String, Option<Admitted>), Refusal> {
    let token = match caller {
        Caller::Agent(id) => return Ok((id.clone(), None)),
        Caller::Token { agent, scope } => {
            let Some(scope) = scope else {
                return Ok((agent.clone(), None));
            };
            let admitted = Admitted::scoped(scope.clone());
            if let Some(tool) = asked.subject.filter(|t| !admitted.permits(t)) {
                log::info!(
                    "{agent} may not call {:?}: outside its token's scopes",
                    tool.chars().take(200).collect::<String>()
                );
                return Err(Refusal::of(&delegated::Refused::forbidden(), asked.id));
            }
            return Ok((agent.clone(), Some(admitted)));
        }
        Caller::Partner(token) => token,
        Caller::Unbound => return Err(Refusal::unbound()),
    };
    let request = delegated::Request {
        token,
        workspace,
        body: asked.body,
        tool: asked.tool.unwrap_or_default(),
        subject: asked.subject.unwrap_or_default(),
        is_call: asked.tool.is_some(),
    };
    match api.delegation.check(api, &request) {
        Ok(admitted) => {
            let org = admitted
                .delegation
                .as_ref()
                .map_or("", |(org, _)| org.as_str());
            Ok((partner_caller(org), Some(admitted)))
        }
        Err(refused) => Err(Refusal::of(&refused, asked.id)),
    }
}

/// At most one log line per this about refused credentials.
const UNAUTHORIZED_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Requests refused for missing or wrong credentials (401), logged at most once per
/// [`UNAUTHORIZED_LOG_EVERY`] with a count, so a flood of bad tokens cannot flood the log.
#[derive(Default)]
pub(super) struct Unauthorized {
    state: Mutex<(u64, Option<std::time::Instant>)>,
}

impl Unauthorized {
    /// Notes a 401 to `path` from `peer`; never logs the credential.
    pub(super) fn note(&self, peer: std::net::SocketAddr, path: &str) {
        let mut state = lock(&self.state);
        state.0 += 1;
        let now = std::time::Instant::now();
        if state.1.is_none_or(|at| now - at >= UNAUTHORIZED_LOG_EVERY) {
            log::warn!(
                "refused {} request(s) without valid credentials (401); last from {} to {:?}",
                state.0,
                peer.ip(),
                path.chars().take(100).collect::<String>()
            );
            *state = (0, Some(now));
        }
    }
}

/// Each workspace's token checkers, built from its stored identity settings on first use, so
/// that JWKS and introspection caches live as long as the settings do.
#[derive(Default)]
pub(super) struct IdentityCache {
    verifiers: Mutex<HashMap<String, Arc<Verifier>>>,
    introspectors: Mutex<HashMap<String, Arc<Introspector>>>,
}

impl IdentityCache {
    /// Forgets a workspace's checkers (its identity settings changed).
    pub(super) fn forget(&self, workspace: &str) {
        lock(&self.verifiers).remove(workspace);
        lock(&self.introspectors).remove(workspace);
    }

    /// The identity a workspace's settings find in `token`; `None` when it has none, or the
    /// token fails (the reason is logged).
    fn verify(&self, api: &Api, workspace: &str, token: &str) -> Option<Identity> {
        let now = crate::time::unix_now();
        // A JWT (three parts) goes to the JWT settings; anything else to introspection.
        let adapter: Arc<dyn Authenticate> =
            match (token.split('.').count() == 3, self.verifier(api, workspace)) {
                (true, Some(verifier)) => verifier,
                _ => self.introspector(api, workspace)?,
            };
        let result = adapter.authenticate(token, now).and_then(|identity| {
            let claimed = identity.workspace.as_deref();
            crate::identity::check_workspace(claimed, identity.workspace.is_some(), workspace)?;
            Ok(identity)
        });
        match result {
            Ok(identity) => Some(identity),
            Err(why) => {
                log::info!("workspace {workspace}: identity token refused: {why}");
                None
            }
        }
    }

    fn introspector(&self, api: &Api, workspace: &str) -> Option<Arc<Introspector>> {
        cached(api, &self.introspectors, workspace, |identity| {
            let config = identity.introspection?;
            let authorization = match &config.authorization {
                Some(stored) => {
                    let token = stored.strip_prefix("encrypted:").unwrap_or(stored);
                    let bound = binding(workspace, "identity");
                    match api.keyring.decrypt_secret(&bound, "authorization", token) {
                        Ok(value) => Some(value),
                        Err(e) => {
                            log::error!("workspace {workspace}: introspection credential: {e}");
                            return None;
                        }
                    }
                }
                None => None,
            };
            Introspector::new(config, authorization)
                .map_err(|why| {
                    log::error!("workspace {workspace}: introspection settings unusable: {why}")
                })
                .ok()
        })
    }

    fn verifier(&self, api: &Api, workspace: &str) -> Option<Arc<Verifier>> {
        cached(api, &self.verifiers, workspace, |identity| {
            Verifier::new(identity.jwt?)
                .map_err(|why| log::error!("workspace {workspace}: JWT settings unusable: {why}"))
                .ok()
        })
    }
}

/// The workspace's cached checker, or one built from its stored identity settings.
fn cached<T>(
    api: &Api,
    cache: &Mutex<HashMap<String, Arc<T>>>,
    workspace: &str,
    build: impl FnOnce(IdentityConfig) -> Option<T>,
) -> Option<Arc<T>> {
    if let Some(checker) = lock(cache).get(workspace) {
        return Some(Arc::clone(checker));
    }
    let identity = lock(&api.store)
        .state()
        .workspaces
        .get(workspace)?
        .identity
        .clone()?;
    let checker = Arc::new(build(identity)?);
    lock(cache).insert(workspace.to_owned(), Arc::clone(&checker));
    Some(checker)
}
