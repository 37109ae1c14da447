//! API: the HTTP side of the gate (serve mode).
//!
//! Owns: the [`Api`] that every HTTP worker shares: the state store, the keyring, the admin
//! token, the running workspaces, the MCP sessions and the request counters; and the dispatch of a
//! request to `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text), the REST admin API
//! under `/api/v1/aegis/` (`rest.rs`) or MCP over Streamable HTTP at `/mcp/{workspace}`
//! (`mcp_http.rs`).
//! Never: blocks a worker longer than one request's deadline; never puts a secret into a
//! response or a log line (env values and keys are write-only through the API).

mod admit;
mod delegated;
pub mod front;
pub mod http;
mod mcp_http;
mod relay;
mod rest;
pub mod serve;
mod streams;

use crate::approvals::webhooks::Webhooks;
use crate::approvals::Approvals;
use crate::config::{ServerConfig, Settings};
use crate::crypto::secret::{hash_secret, hashes_equal};
use crate::crypto::signing::SigningKeys;
use crate::crypto::Keyring;
use crate::gate::runtime::Runtime;
use crate::store::pins::PinStore;
use crate::store::state::{Connection, IdentityConfig, StateStore};
use http::ApiError;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

/// What serve mode is configured with.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// Executables a connection may run (names or paths, exactly as in `command[0]`).
    pub allowed_commands: BTreeSet<String>,
    /// `Origin` values accepted on `/mcp/…` (a request without `Origin` is accepted).
    pub allowed_origins: BTreeSet<String>,
    /// `Host` values accepted on `/mcp/…`; empty accepts the listening address and `localhost`.
    pub allowed_hosts: BTreeSet<String>,
    /// Largest request body. Default 4 MiB.
    pub max_body: usize,
    /// This gate's organization id (`--org-id`): stored, and kept for later starts.
    pub org_id: Option<String>,
    /// Size at which `audit.log` is rotated.
    pub audit_rotate_bytes: u64,
    /// Calls held for approval at once; more are refused.
    pub max_held_calls: usize,
}

/// Everything the HTTP workers share.
pub struct Api {
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
    sessions: Mutex<HashMap<String, mcp_http::HttpSession>>,
    /// The sessions' GET event streams.
    streams: streams::Streams,
    /// This gate's Ed25519 keys (its identity towards partners).
    signing: SigningKeys,
    /// Inbound delegation: the replay cache and the partners' rate counters.
    delegation: delegated::Delegation,
    /// The signed audit trail (`audit.log`), when serve keeps one.
    audit: Option<Arc<crate::audit::Audit>>,
    /// Calls escalated by a policy, waiting for a person.
    approvals: Arc<Approvals>,
    /// Approval notices to the policies' webhooks.
    webhooks: Arc<Webhooks>,
    /// Each workspace's JWT verifier (with its cached key set), built on first use.
    verifiers: Mutex<HashMap<String, Arc<crate::identity::jwt::Verifier>>>,
    /// Each workspace's introspection client (with its cache), built on first use.
    introspectors: Mutex<HashMap<String, Arc<crate::identity::introspect::Introspector>>>,
    next_session: AtomicU64,
    ready: AtomicBool,
    listen_hosts: Mutex<BTreeSet<String>>,
    http_requests: Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
    calls: Mutex<Calls>,
}

/// `tools/call` over HTTP: counts by outcome and a latency histogram.
#[derive(Default)]
struct Calls {
    by_outcome: std::collections::BTreeMap<String, u64>,
    /// Counts per bucket of [`LATENCY_BUCKETS`] (cumulative when printed), then the sum in seconds.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

/// Upper bounds (seconds) of the call latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];

use crate::thread::lock;

impl Api {
    /// Serve mode over an opened store, with the admin token's hash.
    pub fn new(
        options: ApiOptions,
        settings: Arc<Settings>,
        keyring: Keyring,
        store: StateStore,
        admin_token_hash: String,
        signing: SigningKeys,
        audit: Option<Arc<crate::audit::Audit>>,
    ) -> std::io::Result<Api> {
        let current = signing.current();
        let webhooks = Arc::new(Webhooks::start(
            current.signing_key().clone(),
            current.kid.clone(),
        )?);
        let approvals = Approvals::new(
            options.max_held_calls,
            approval_observer(Arc::clone(&webhooks), audit.clone()),
        )?;
        Ok(Api {
            options,
            settings,
            keyring,
            admin_token_hash,
            store: Mutex::new(store),
            runtimes: Mutex::new(HashMap::new()),
            changes: Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            streams: streams::Streams::start()?,
            signing,
            delegation: delegated::Delegation::new(),
            audit,
            approvals,
            webhooks,
            verifiers: Mutex::new(HashMap::new()),
            introspectors: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            listen_hosts: Mutex::new(BTreeSet::new()),
            http_requests: Mutex::new(std::collections::BTreeMap::new()),
            calls: Mutex::new(Calls::default()),
        })
    }

    /// Starts every workspace the state says is active (after a restart, everything is back).
    pub fn resume(&self, listen: std::net::SocketAddr) {
        // The front serves already: REST changes wait until the stored state is running.
        let _change = lock(&self.changes);
        let mut hosts = lock(&self.listen_hosts);
        hosts.insert(listen.to_string());
        hosts.insert(format!("localhost:{}", listen.port()));
        hosts.insert(format!("127.0.0.1:{}", listen.port()));
        drop(hosts);
        let active: Vec<String> = lock(&self.store)
            .state()
            .workspaces
            .iter()
            .filter(|(_, w)| w.active)
            .map(|(id, _)| id.clone())
            .collect();
        for ws in active {
            if let Err(e) = self.start_workspace(&ws) {
                log::error!("workspace {ws}: cannot start: {}", e.message);
            }
        }
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets up the demo workspace (see `serve --demo`); returns a fresh agent key for it.
    pub fn demo(&self, exe: &str) -> Result<String, String> {
        let _change = lock(&self.changes);
        rest::demo(self, exe).map_err(|e| e.message)
    }

    /// Ends every GET event stream (clients get a clean end; call before the front stops).
    pub fn end_streams(&self) {
        self.streams.stop();
    }

    /// Answers every call still waiting for a person (it expires) and stops the approval and
    /// webhook threads: call before the front stops, whose workers those calls hold.
    pub fn release_held(&self) {
        self.approvals.stop();
        self.webhooks.stop();
    }

    /// The identity a workspace's JWT settings find in `token`; `None` when it has none, or
    /// the token fails (the reason is logged).
    fn verify_identity_token(
        &self,
        workspace: &str,
        token: &str,
    ) -> Option<crate::identity::Identity> {
        let now = crate::time::unix_now();
        use crate::identity::Authenticate;
        // A JWT (three parts) goes to the JWT settings; anything else to introspection.
        let adapter: Arc<dyn Authenticate> =
            match (token.split('.').count() == 3, self.verifier(workspace)) {
                (true, Some(verifier)) => verifier,
                _ => self.introspector(workspace)?,
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

    fn introspector(
        &self,
        workspace: &str,
    ) -> Option<Arc<crate::identity::introspect::Introspector>> {
        self.identity_checker(&self.introspectors, workspace, |identity| {
            let config = identity.introspection?;
            let authorization = match &config.authorization {
                Some(stored) => {
                    let token = stored.strip_prefix("encrypted:").unwrap_or(stored);
                    let bound = binding(workspace, "identity");
                    match self.keyring.decrypt_secret(&bound, "authorization", token) {
                        Ok(value) => Some(value),
                        Err(e) => {
                            log::error!("workspace {workspace}: introspection credential: {e}");
                            return None;
                        }
                    }
                }
                None => None,
            };
            crate::identity::introspect::Introspector::new(config, authorization)
                .map_err(|why| {
                    log::error!("workspace {workspace}: introspection settings unusable: {why}")
                })
                .ok()
        })
    }

    fn verifier(&self, workspace: &str) -> Option<Arc<crate::identity::jwt::Verifier>> {
        self.identity_checker(&self.verifiers, workspace, |identity| {
            crate::identity::jwt::Verifier::new(identity.jwt?)
                .map_err(|why| log::error!("workspace {workspace}: JWT settings unusable: {why}"))
                .ok()
        })
    }

    /// The workspace's cached token checker, built from its stored identity
    /// settings on first use so that JWKS and introspection caches live as
    /// long as the settings do (`set_identity` clears both caches).
    fn identity_checker<T>(
        &self,
        cache: &Mutex<HashMap<String, Arc<T>>>,
        workspace: &str,
        build: impl FnOnce(IdentityConfig) -> Option<T>,
    ) -> Option<Arc<T>> {
        if let Some(checker) = lock(cache).get(workspace) {
            return Some(Arc::clone(checker));
        }
        let identity = lock(&self.store)
            .state()
            .workspaces
            .get(workspace)?
            .identity
            .clone()?;
        let checker = Arc::new(build(identity)?);
        lock(cache).insert(workspace.to_owned(), Arc::clone(&checker));
        Some(checker)
    }

    /// Stops every running workspace.
    pub fn shutdown(&self) {
        let runtimes: Vec<Runtime> = lock(&self.runtimes).drain().map(|(_, r)| r).collect();
        for runtime in runtimes {
            runtime.stop();
        }
    }

    fn is_admin(&self, request: &tiny_http::Request) -> bool {
        http::bearer(request).is_some_and(|t| hashes_equal(&hash_secret(t), &self.admin_token_hash))
    }

    /// The child's config: argv split, env decrypted.
    fn server_config(&self, conn: &Connection) -> Result<ServerConfig, ApiError> {
        // Stored under another separator (`serve --config` changed): refused, not merged wrongly.
        crate::config::validate_server_name(&conn.name, self.settings.separator).map_err(
            |why| {
                ApiError::new(
                    409,
                    "connection_name",
                    format!("connection {:?}: {why}", conn.name),
                )
            },
        )?;
        let spawn = Spawn {
            data_dir: self.options.data_dir.clone(),
            org_id: lock(&self.store).state().org_id.clone(),
            call_timeout: self.settings.call_timeout,
        };
        server_config(&self.keyring, conn, &spawn)
            .map_err(|message| ApiError::new(500, "connection", message))
    }

    /// Starts a workspace's enabled connections (no-op when it runs already).
    fn start_workspace(&self, ws: &str) -> Result<(), ApiError> {
        let mut runtimes = lock(&self.runtimes);
        if runtimes.contains_key(ws) {
            return Ok(());
        }
        let conns: Vec<Connection> = lock(&self.store)
            .state()
            .connections
            .values()
            .filter(|c| c.workspace_id == ws && c.enabled)
            .cloned()
            .collect();
        let servers = conns
            .iter()
            .map(|c| self.server_config(c))
            .collect::<Result<Vec<_>, _>>()?;
        let pins = PinStore::open(&self.options.data_dir)
            .map_err(|e| ApiError::new(500, "store", e.to_string()))?;
        let runtime = Runtime::start(Arc::clone(&self.settings), ws, servers, Some(pins))
            .map_err(|e| ApiError::new(500, "start_failed", e.to_string()))?;
        let policy = lock(&self.store)
            .state()
            .workspaces
            .get(ws)
            .and_then(|w| w.policy.clone());
        if let Some(policy) = policy {
            runtime.gate().set_policy(policy);
        }
        runtime.gate().set_approvals(Arc::clone(&self.approvals));
        runtimes.insert(ws.to_owned(), runtime);
        log::info!("workspace {ws}: active with {} connections", conns.len());
        Ok(())
    }

    fn stop_workspace(&self, ws: &str) {
        // Held calls of the workspace cannot run any more: their agents are told.
        self.approvals.cancel_workspace(ws);
        let runtime = lock(&self.runtimes).remove(ws);
        if let Some(runtime) = runtime {
            runtime.stop();
            log::info!("workspace {ws}: stopped");
        }
        lock(&self.sessions).retain(|_, s| s.workspace != ws);
    }
}

/// A stored connection as a child to start: argv split, env decrypted (bound to `workspace/name`
/// and the variable).
/// What starting a remote connection's bridge needs besides the connection.
struct Spawn {
    data_dir: PathBuf,
    /// This gate's org id (a partner bridge signs as it).
    org_id: Option<String>,
    /// The bridge's per-request timeout follows the gate's call deadline.
    call_timeout: std::time::Duration,
}

fn server_config(
    keyring: &Keyring,
    conn: &Connection,
    spawn: &Spawn,
) -> Result<ServerConfig, String> {
    if let Some(remote) = &conn.remote {
        return bridge_config(keyring, conn, remote, spawn);
    }
    let (command, args) = conn.command.split_first().ok_or("the command is empty")?;
    let binding = binding(&conn.workspace_id, &conn.name);
    let mut env = std::collections::BTreeMap::new();
    for (var, token) in &conn.env {
        let value = keyring
            .decrypt_secret(&binding, var, token)
            .map_err(|e| format!("{var} of {}: {e}", conn.name))?;
        env.insert(var.clone(), value);
    }
    Ok(ServerConfig {
        name: conn.name.clone(),
        command: command.clone(),
        args: args.to_vec(),
        env,
        cwd: None,
        pass_agent: false,
        trusted: conn.trusted,
    })
}

/// A stored workspace's policy (`stdio --workspace` applies it).
pub fn stored_policy(data_dir: &std::path::Path, workspace: &str) -> Option<crate::policy::Policy> {
    let store = StateStore::open(data_dir).ok()?;
    store.state().workspaces.get(workspace)?.policy.clone()
}

/// The enabled connections of a stored workspace, ready to start (`stdio --workspace`).
pub fn stored_servers(
    data_dir: &std::path::Path,
    workspace: &str,
) -> Result<Vec<ServerConfig>, String> {
    let keyring = Keyring::load_or_create(data_dir).map_err(|e| e.to_string())?;
    let store = StateStore::open(data_dir).map_err(|e| e.to_string())?;
    if !store.state().workspaces.contains_key(workspace) {
        return Err(format!(
            "no workspace {workspace:?} in {}",
            data_dir.display()
        ));
    }
    let spawn = Spawn {
        data_dir: data_dir.to_owned(),
        org_id: store.state().org_id.clone(),
        call_timeout: Settings::default().call_timeout,
    };
    store
        .state()
        .connections
        .values()
        .filter(|c| c.workspace_id == workspace && c.enabled)
        .map(|c| server_config(&keyring, c, &spawn))
        .collect()
}

/// A remote connection runs `aegis-gate bridge` as its child: the same supervision as a local
/// server. Header values travel in the child's environment, never on its command line.
fn bridge_config(
    keyring: &Keyring,
    conn: &Connection,
    remote: &crate::store::state::Remote,
    spawn: &Spawn,
) -> Result<ServerConfig, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the gate's own executable: {e}"))?;
    let bound = binding(&conn.workspace_id, &conn.name);
    let mut headers = std::collections::BTreeMap::new();
    for (name, token) in &remote.headers {
        let value = keyring
            .decrypt_secret(&bound, &format!("header:{name}"), token)
            .map_err(|e| format!("header {name} of {}: {e}", conn.name))?;
        headers.insert(name.clone(), value);
    }
    // Past the gate's own deadline the call is answered already; the margin covers the network.
    let timeout = spawn.call_timeout + std::time::Duration::from_secs(10);
    let mut args = vec![
        "bridge".to_owned(),
        "--url".to_owned(),
        remote.url.clone(),
        "--timeout-ms".to_owned(),
        timeout.as_millis().to_string(),
    ];
    if conn.kind == crate::store::state::Kind::Partner {
        let audience = remote
            .org_id
            .clone()
            .ok_or("a partner connection has no org_id")?;
        let org = spawn
            .org_id
            .clone()
            .ok_or("a partner connection needs this gate's --org-id")?;
        let scope = serde_json::to_string(&remote.scope).map_err(|e| e.to_string())?;
        args.extend([
            "--partner-org".to_owned(),
            audience,
            "--org-id".to_owned(),
            org,
            "--data-dir".to_owned(),
            spawn.data_dir.display().to_string(),
            "--scope".to_owned(),
            scope,
            "--sub".to_owned(),
            conn.workspace_id.clone(),
        ]);
    }
    let mut env = std::collections::BTreeMap::new();
    let headers = serde_json::to_string(&headers).map_err(|e| e.to_string())?;
    env.insert(crate::remote::bridge::HEADERS_ENV.to_owned(), headers);
    Ok(ServerConfig {
        name: conn.name.clone(),
        command: exe.display().to_string(),
        args,
        env,
        cwd: None,
        pass_agent: conn.kind == crate::store::state::Kind::Partner,
        trusted: conn.trusted,
    })
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
        let notice = serde_json::json!({ "type": "approval", "approval": approval });
        if let Some(audit) = &audit {
            audit.record(notice.clone());
        }
        if approval.status == crate::approvals::Status::Pending {
            webhooks.send(&approval.webhooks, notice.to_string().as_bytes());
        }
    })
}

/// The rules of `POST /partners`, for the command line (the message of the refusal).
pub fn check_partner(
    state: &crate::store::state::State,
    partner: &crate::store::state::Partner,
) -> Result<(), String> {
    rest::partners::check(state, partner).map_err(|e| e.message)
}

fn binding(workspace: &str, name: &str) -> String {
    crate::crypto::binding(workspace, name)
}

impl front::Handler for Api {
    fn handle(&self, mut request: tiny_http::Request) {
        let url = request.url().to_owned();
        let path = url.split('?').next().unwrap_or_default().to_owned();
        let method = request.method().clone();
        let result = match (&method, path.as_str()) {
            (tiny_http::Method::Get, "/healthz") => Ok((200, serde_json::json!({"status": "ok"}))),
            (tiny_http::Method::Get, "/readyz") => {
                if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok((200, serde_json::json!({"status": "ready"})))
                } else {
                    Err(ApiError::new(
                        503,
                        "not_ready",
                        "workspaces are still starting",
                    ))
                }
            }
            (tiny_http::Method::Get, "/metrics") => {
                let body = self.metrics();
                let status = respond_text(request, 200, &body);
                self.count("metrics", status);
                return;
            }
            (_, "/healthz" | "/readyz" | "/metrics") => Err(ApiError::method_not_allowed()),
            (_, p) if p == "/mcp" || p.starts_with("/mcp/") => {
                // Streams its own answer (JSON or server-sent events).
                let status = mcp_http::handle(self, request, &path);
                self.count("mcp", status);
                return;
            }
            (_, p) if p.starts_with(rest::PREFIX) => {
                if self.is_admin(&request) {
                    rest::handle(self, &mut request, &method, &url)
                } else {
                    Err(ApiError::unauthorized())
                }
            }
            _ => Err(ApiError::not_found("no such route")),
        };
        if let (Some(audit), true) = (&self.audit, path.starts_with(rest::PREFIX)) {
            if method != tiny_http::Method::Get {
                let status = match &result {
                    Ok((status, _)) => *status,
                    Err(e) => e.status,
                };
                audit.record(serde_json::json!({
                    "type": "admin",
                    "method": method.as_str(),
                    "path": path.chars().take(300).collect::<String>(),
                    "status": status,
                }));
            }
        }
        let route = route_class(&path);
        let status = match &result {
            Ok((status, _)) => *status,
            Err(e) => e.status,
        };
        match result {
            Ok((status, body)) => http::respond(request, status, &body),
            Err(e) => http::respond_error(request, &e),
        }
        self.count(route, status);
    }
}

/// The route label of the metrics (bounded: never the raw path).
fn route_class(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        p if p.starts_with(rest::PREFIX) => "rest",
        _ => "other",
    }
}

/// Answers with Prometheus text.
fn respond_text(request: tiny_http::Request, status: u16, body: &str) -> u16 {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(h) =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..])
    {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
    status
}

impl Api {
    fn record_call(&self, call: &mcp_http::CallRecord, outcome: String, took: std::time::Duration) {
        if let Some(audit) = &self.audit {
            let delegation = call
                .delegation
                .as_ref()
                .map(|(iss, jti)| serde_json::json!({ "iss": iss, "jti": jti }));
            audit.record(serde_json::json!({
                "type": "call",
                "workspace": call.workspace,
                "agent": call.agent,
                "delegation": delegation,
                "tool": call.tool,
                "verdict": call.verdict,
                "arguments_sha256": call.arguments,
                "outcome": outcome,
                "ms": took.as_millis(),
            }));
        }
        let mut calls = lock(&self.calls);
        *calls.by_outcome.entry(outcome).or_default() += 1;
        let secs = took.as_secs_f64();
        if let Some(idx) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(slot) = calls.buckets.get_mut(idx) {
                *slot += 1;
            }
        }
        calls.count += 1;
        calls.sum_secs += secs;
    }

    fn count(&self, route: &'static str, status: u16) {
        *lock(&self.http_requests)
            .entry((route, status))
            .or_default() += 1;
    }

    /// Prometheus text: connections by status, restarts, tools, sessions, HTTP requests.
    fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut by_status: std::collections::BTreeMap<&'static str, u64> =
            std::collections::BTreeMap::new();
        let mut restarts = Vec::new();
        for (ws, runtime) in lock(&self.runtimes).iter() {
            for snap in runtime.snapshots() {
                *by_status.entry(snap.status.as_str()).or_default() += 1;
                restarts.push((ws.clone(), snap.name.clone(), snap.restarts, snap.tools));
            }
        }
        let _ = writeln!(
            out,
            "# HELP aegis_connections Downstream connections by status."
        );
        let _ = writeln!(out, "# TYPE aegis_connections gauge");
        for status in [
            "starting",
            "healthy",
            "unhealthy",
            "restarting",
            "failed",
            "stopped",
        ] {
            let n = by_status.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "aegis_connections{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP aegis_connection_restarts_total Restarts of a connection's child."
        );
        let _ = writeln!(out, "# TYPE aegis_connection_restarts_total counter");
        for (ws, name, n, _) in &restarts {
            let _ = writeln!(
                out,
                "aegis_connection_restarts_total{{workspace=\"{ws}\",connection=\"{name}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP aegis_connection_tools Tools in a connection's last listing."
        );
        let _ = writeln!(out, "# TYPE aegis_connection_tools gauge");
        for (ws, name, _, tools) in &restarts {
            let _ = writeln!(
                out,
                "aegis_connection_tools{{workspace=\"{ws}\",connection=\"{name}\"}} {tools}"
            );
        }
        let _ = writeln!(out, "# HELP aegis_merger_cache_total Merged tools/list views served from the cache (hit) or built (miss).");
        let _ = writeln!(out, "# TYPE aegis_merger_cache_total counter");
        for (ws, runtime) in lock(&self.runtimes).iter() {
            let (hits, misses) = runtime.gate().cache_stats();
            let _ = writeln!(
                out,
                "aegis_merger_cache_total{{workspace=\"{ws}\",result=\"hit\"}} {hits}"
            );
            let _ = writeln!(
                out,
                "aegis_merger_cache_total{{workspace=\"{ws}\",result=\"miss\"}} {misses}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP aegis_mcp_sessions Open MCP sessions over HTTP."
        );
        let _ = writeln!(out, "# TYPE aegis_mcp_sessions gauge");
        let _ = writeln!(out, "aegis_mcp_sessions {}", lock(&self.sessions).len());
        let calls = lock(&self.calls);
        let _ = writeln!(
            out,
            "# HELP aegis_calls_total tools/call over HTTP by outcome."
        );
        let _ = writeln!(out, "# TYPE aegis_calls_total counter");
        for (outcome, n) in &calls.by_outcome {
            let _ = writeln!(out, "aegis_calls_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP aegis_call_duration_seconds tools/call over HTTP, request to answer."
        );
        let _ = writeln!(out, "# TYPE aegis_call_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(calls.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "aegis_call_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "aegis_call_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            calls.count
        );
        let _ = writeln!(out, "aegis_call_duration_seconds_sum {}", calls.sum_secs);
        let _ = writeln!(out, "aegis_call_duration_seconds_count {}", calls.count);
        drop(calls);
        let _ = writeln!(
            out,
            "# HELP aegis_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE aegis_http_requests_total counter");
        for ((route, status), n) in lock(&self.http_requests).iter() {
            let _ = writeln!(
                out,
                "aegis_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }
}

/// Answers with a JSON body.
pub fn respond_json(request: tiny_http::Request, status: u16, body: &str) {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]);
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = header {
        response = response.with_header(header);
    }
    if let Err(e) = request.respond(response) {
        log::debug!("client went away before its answer: {e}");
    }
}
