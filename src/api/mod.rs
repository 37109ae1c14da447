//! API: the HTTP side of the gate (serve mode).
//!
//! Owns: the [`Api`] that every HTTP worker shares, and the dispatch of a request to
//! `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text, [`metrics`]), the REST admin
//! API under `/api/v1/aegis/` (`rest/`) or MCP over Streamable HTTP at `/mcp/{workspace}` and `/mcp`
//! (`mcp_http.rs`). Each concern of the `Api` has one file: running workspaces
//! (`workspaces.rs`), the MCP session table (`sessions.rs`), callers and their identity caches
//! (`callers.rs`), inbound delegation (`delegated.rs`), a call's record (`calls.rs`), the
//! answer to an MCP request (`mcp_reply.rs`), server-sent events (`sse.rs`), the sessions' GET
//! streams (`streams.rs`), the metrics (`metrics.rs`), and the process's wiring (`serve.rs`).
//! The HTTP server itself (connections, limits, workers) is [`crate::http`]; `Api` is its
//! handler.
//! Never: blocks a worker longer than one request's deadline; never puts a secret into a
//! response or a log line (env values and keys are write-only through the API).
//!
//! Lock order (a lock is only taken while holding locks above it): `changes` (REST changes, one
//! at a time), then `runtimes`, then `store`. The session table's, the identity caches', the
//! metrics', `applied`'s and `listen_hosts` locks are innermost: no other lock is taken while
//! one is held.

mod callers;
mod calls;
mod delegated;
pub(crate) mod http;
mod mcp_http;
mod mcp_modern;
mod mcp_reply;
mod metrics;
mod rest;
mod replicas;
pub(crate) mod serve;
mod sessions;
mod sse;
mod streams;
mod workspaces;

use crate::approvals::webhooks::Webhooks;
use crate::approvals::Approvals;
use crate::config::Settings;
use crate::crypto::secret::{hash_secret, hashes_equal};
use crate::crypto::signing::SigningKeys;
use crate::crypto::Keyring;
use crate::gate::runtime::Runtime;
use crate::http::{Method, Request};
use crate::store::shared::SharedStore;
use crate::store::state::StateStore;
use crate::thread::lock;
use http::ApiError;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// What serve mode is configured with.
#[derive(Clone, Debug)]
pub(crate) struct ApiOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The commands a connection may run, and the variables they may set.
    pub allowlist: crate::allowlist::Allowlist,
    /// `Origin` values accepted on `/mcp/…` (a request without `Origin` is accepted).
    pub allowed_origins: BTreeSet<String>,
    /// `Host` values accepted on `/mcp/…`; empty accepts the listening address and `localhost`.
    pub allowed_hosts: BTreeSet<String>,
    /// This gate's organization id (`--org-id`): stored, and kept for later starts.
    pub org_id: Option<String>,
    /// Size at which `audit.log` is rotated.
    pub audit_rotate_bytes: u64,
    /// Calls held for approval at once; more are refused.
    pub max_held_calls: usize,
    /// `--store`: the shared store's URL (replicas); `None` keeps the state in the data dir.
    pub store: Option<String>,
}

/// Everything the HTTP workers share.
pub(crate) struct Api {
    options: ApiOptions,
    settings: Arc<Settings>,
    keyring: Keyring,
    admin_token_hash: String,
    store: Mutex<StateStore>,
    runtimes: Mutex<HashMap<String, Runtime>>,
    /// Held by every REST change from after its body is read to its answer (store write,
    /// teardown, start), so two changes never interleave around a teardown; agent requests never
    /// take it.
    changes: Mutex<()>,
    /// The MCP sessions over HTTP.
    sessions: sessions::Sessions,
    /// The sessions' GET event streams.
    streams: streams::Streams,
    /// This gate's Ed25519 keys (its identity towards partners).
    signing: SigningKeys,
    /// Inbound delegation: the replay cache and the partners' rate counters (in the shared
    /// store with `--store`).
    delegation: delegated::Delegation,
    /// The signed audit trail (`audit.log`), when serve keeps one.
    audit: Option<Arc<crate::audit::Audit>>,
    /// Calls escalated by a policy, waiting for a person.
    approvals: Arc<Approvals>,
    /// Approval notices to the policies' webhooks.
    webhooks: Arc<Webhooks>,
    /// Each workspace's JWT verifier and introspection client, built on first use.
    identity: callers::IdentityCache,
    ready: AtomicBool,
    listen_hosts: Mutex<BTreeSet<String>>,
    metrics: Arc<metrics::Metrics>,
    /// MCP requests waiting for their answers.
    answers: mcp_reply::Answers,
    /// 401s, logged at a bounded rate.
    unauthorized: callers::Unauthorized,
    /// The shared store of `--store` (replicas); `None` on one node.
    shared: Option<SharedStore>,
    /// Each running connection's stored record as its child was started from it, by id: a
    /// replica compares it with the shared state to see what changed (`replicas.rs`).
    applied: Mutex<HashMap<String, crate::store::state::Connection>>,
}

impl Api {
    /// Serve mode over an opened store, with the admin token's hash.
    pub(crate) fn new(
        options: ApiOptions,
        settings: Arc<Settings>,
        keyring: Keyring,
        store: StateStore,
        admin_token_hash: String,
        signing: SigningKeys,
        audit: Option<Arc<crate::audit::Audit>>,
    ) -> std::io::Result<Api> {
        let shared = store.file().shared_store();
        let current = signing.current();
        let webhooks = Arc::new(Webhooks::start(
            current.signing_key().clone(),
            current.kid.clone(),
        )?);
        let approvals = Approvals::new(
            options.max_held_calls,
            approval_observer(Arc::clone(&webhooks), audit.clone()),
        )?;
        if let Some(store) = &shared {
            // A replica is known by its signing key id: each has its own data dir and key.
            approvals.share(store.clone(), current.kid.clone())?;
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let quotas = sessions::Quotas {
            total: settings.http.max_sessions,
            per_workspace: settings.http.max_sessions_per_workspace,
            per_agent: settings.http.max_sessions_per_agent,
        };
        Ok(Api {
            options,
            settings,
            keyring,
            admin_token_hash,
            store: Mutex::new(store),
            runtimes: Mutex::new(HashMap::new()),
            changes: Mutex::new(()),
            sessions: sessions::Sessions::new(quotas),
            streams: streams::Streams::start()?,
            signing,
            delegation: delegated::Delegation::new(shared.as_ref()),
            approvals,
            webhooks,
            identity: callers::IdentityCache::default(),
            ready: AtomicBool::new(false),
            listen_hosts: Mutex::new(BTreeSet::new()),
            answers: mcp_reply::Answers::start(mcp_reply::Records {
                audit: audit.clone(),
                metrics: Arc::clone(&metrics),
            })?,
            metrics,
            audit,
            unauthorized: callers::Unauthorized::default(),
            shared,
            applied: Mutex::new(HashMap::new()),
        })
    }

    /// Sets up the demo workspace (see `serve --demo`); returns a fresh agent key for it (the
    /// demo agents of earlier starts revoked).
    pub(in crate::api) fn demo(&self, exe: &str) -> Result<rest::DemoAgent, String> {
        let _change = lock(&self.changes);
        rest::demo(self, exe).map_err(|e| e.message)
    }

    /// Ends every GET event stream (clients get a clean end; call before the front stops).
    pub(crate) fn end_streams(&self) {
        self.streams.stop();
    }

    /// Answers every call still waiting for a person (it expires) and stops the approval and
    /// webhook threads: call before [`Api::end_waiting`], so that those answers are the ones
    /// their agents get.
    pub(crate) fn release_held(&self) {
        self.approvals.stop();
        self.webhooks.stop();
    }

    /// A REST change of the state (see [`StateStore::update`]). With a shared store the change
    /// waits on the network without holding `store` (every MCP request reads the state in memory
    /// under it); `changes`, which every REST change holds, keeps this replica's changes in
    /// order.
    pub(in crate::api) fn update_state<T, E: From<crate::store::Error>>(
        &self,
        change: impl FnOnce(&mut crate::store::state::State) -> Result<T, E>,
    ) -> Result<T, E> {
        let (file, seen) = {
            let store = lock(&self.store);
            if !store.file().is_shared() {
                drop(store);
                return lock(&self.store).update(change);
            }
            (store.file().clone(), store.stamp())
        };
        let (next, out, stamp) = crate::store::state::change_shared(&file, seen, change)?;
        lock(&self.store).take(next, stamp);
        Ok(out)
    }

    /// `GET /readyz`: ready once the stored workspaces run, and while the shared store (if
    /// any) answers.
    fn readiness(&self) -> Result<(u16, serde_json::Value), ApiError> {
        if !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::new(
                503,
                "not_ready",
                "workspaces are still starting",
            ));
        }
        self.need_store()?;
        Ok((200, serde_json::json!({"status": "ready"})))
    }

    /// Refuses (503) what needs the shared store while it does not answer: changes, new
    /// sessions, delegated calls. On one node there is nothing to need.
    pub(in crate::api) fn need_store(&self) -> Result<(), ApiError> {
        if let Some((holds, seen)) = lock(&self.store).lost() {
            return Err(crate::store::state::lost_error(holds, seen).into());
        }
        match &self.shared {
            Some(store) if !store.reachable() => Err(ApiError::new(
                503,
                "store_unavailable",
                format!(
                    "the shared store at {} does not answer; calls on running sessions go on, \
                     changes, new sessions and delegated calls wait for it",
                    store.url()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn is_admin(&self, request: &Request) -> bool {
        http::bearer(request).is_some_and(|t| hashes_equal(&hash_secret(t), &self.admin_token_hash))
    }

    /// Where an MCP answer's record goes.
    fn records(&self) -> mcp_reply::Records {
        mcp_reply::Records {
            audit: self.audit.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    /// Answers every MCP request still waiting for its answer (503) and stops the thread that
    /// waits for them: call before the front stops.
    pub(crate) fn end_waiting(&self) {
        self.answers.stop();
    }

    /// `GET /metrics`'s text.
    fn metrics(&self) -> String {
        let sessions = self.sessions.len();
        let mut text = self.metrics.render(&lock(&self.runtimes), sessions);
        if let Some(audit) = &self.audit {
            metrics::audit_text(&mut text, audit);
        }
        text
    }
}

/// Logs every new or decided approval, appends it to the audit trail, and announces new ones
/// to the policy's webhooks.
fn approval_observer(
    webhooks: Arc<Webhooks>,
    audit: Option<Arc<crate::audit::Audit>>,
) -> crate::approvals::Observer {
    Box::new(move |approval| {
        log::info!(
            "approval {} for {:?} in {} by {:?}: {:?}",
            approval.id,
            approval.tool,
            approval.workspace,
            approval.agent,
            approval.status
        );
        let notice = crate::audit::records::approval(approval);
        if let Some(audit) = &audit {
            audit.record(notice.clone());
        }
        if approval.status == crate::approvals::Status::Pending {
            webhooks.send(&approval.webhooks, notice.to_string().as_bytes());
        }
    })
}

/// The rules of `POST /partners`, for the command line (the message of the refusal).
pub(crate) fn check_partner(
    state: &crate::store::state::State,
    partner: &crate::store::state::Partner,
) -> Result<(), String> {
    rest::partners::check(state, partner).map_err(|e| e.message)
}

impl crate::http::Handler for Api {
    fn handle(&self, request: Request) {
        let url = request.url().to_owned();
        let path = request.path().to_owned();
        let method = request.method().clone();
        let peer = request.peer();
        let result = match (&method, path.as_str()) {
            (Method::Get, "/healthz") => Ok((200, serde_json::json!({"status": "ok"}))),
            (Method::Get, "/readyz") => self.readiness(),
            (Method::Get, "/metrics") => {
                let body = self.metrics();
                let status = metrics::respond_text(request, 200, &body);
                self.metrics.count("metrics", status);
                return;
            }
            (_, "/healthz" | "/readyz" | "/metrics") => Err(ApiError::method_not_allowed()),
            (_, p) if p == "/mcp" || p.starts_with("/mcp/") => {
                // Answers on its own (JSON or server-sent events, maybe from another thread).
                let status = mcp_http::handle(self, request, &path);
                self.metrics.count("mcp", status);
                return;
            }
            (_, p) if p.starts_with(rest::PREFIX) => {
                if self.is_admin(&request) {
                    rest::handle(self, &request, &method, &url)
                } else {
                    Err(ApiError::unauthorized())
                }
            }
            _ => Err(ApiError::not_found("no such route")),
        };
        if let (Some(audit), true) = (&self.audit, path.starts_with(rest::PREFIX)) {
            if method != Method::Get {
                let status = match &result {
                    Ok((status, _)) => *status,
                    Err(e) => e.status,
                };
                audit.record(crate::audit::records::admin(method.as_str(), &path, status));
            }
        }
        let route = metrics::route_class(&path);
        let status = match &result {
            Ok((status, _)) => *status,
            Err(e) => e.status,
        };
        if status == 401 {
            self.unauthorized.note(peer, &path);
        }
        match result {
            Ok((status, body)) => http::respond(request, status, &body),
            Err(e) => http::respond_error(request, &e),
        }
        self.metrics.count(route, status);
    }
}
