//! Running workspaces: starting a stored workspace's connections behind its gate, stopping it,
//! and bringing back every active workspace after a restart.
//!
//! Owns: the runtimes table's lifecycle (`Api::runtimes`: a workspace started, stopped, one
//! connection's child torn down outside the lock), the child config of a stored
//! connection as serve mode starts it (through [`crate::launch`]), and what a workspace's stop
//! ends with it (its held calls, its HTTP sessions).
//! Never: holds the runtimes lock while a child is torn down (a stubborn child would stall
//! every agent); takes the runtimes lock while holding the store's (lock order: `changes`, then
//! `runtimes`, then `store`).

use super::http::ApiError;
use super::Api;
use crate::config::ServerConfig;
use crate::gate::runtime::Runtime;
use crate::launch::{self, Spawn};
use crate::store::pins::PinStore;
use crate::store::state::Connection;
use crate::thread::lock;
use std::sync::Arc;

impl Api {
    /// Starts every workspace the state says is active (after a restart, everything is back).
    pub(crate) fn resume(&self, listen: std::net::SocketAddr) {
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

    /// Stops every running workspace.
    pub(crate) fn shutdown(&self) {
        let runtimes: Vec<Runtime> = lock(&self.runtimes).drain().map(|(_, r)| r).collect();
        for runtime in runtimes {
            runtime.stop();
        }
    }

    /// The child's config: argv split, env decrypted.
    pub(super) fn server_config(&self, conn: &Connection) -> Result<ServerConfig, ApiError> {
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
        // Again at every start: a command stored under an older, wider allowlist does not run.
        if conn.remote.is_none() {
            let env = conn.env.keys().map(|k| (k.as_str(), ""));
            self.options
                .allowlist
                .check(&conn.command, env)
                .map_err(|refusal| {
                    ApiError::new(
                        409,
                        "connection_refused",
                        format!(
                            "connection {:?} is refused by the allowlist: {refusal}",
                            conn.name
                        ),
                    )
                })?;
        }
        let spawn = Spawn {
            data_dir: self.options.data_dir.clone(),
            org_id: lock(&self.store).state().org_id.clone(),
            call_timeout: self.settings.call_timeout,
        };
        launch::server_config(&self.keyring, conn, &spawn)
            .map_err(|message| ApiError::new(500, "connection", message))
    }

    /// Starts a workspace's enabled connections (no-op when it runs already).
    pub(super) fn start_workspace(&self, ws: &str) -> Result<(), ApiError> {
        if lock(&self.runtimes).contains_key(ws) {
            return Ok(());
        }
        // Before the runtimes lock: with a shared store this reads the pins over the network,
        // and every agent request takes that lock.
        let pins = self.pin_store()?;
        let mut runtimes = lock(&self.runtimes);
        if runtimes.contains_key(ws) {
            return Ok(());
        }
        let mut conns: Vec<Connection> = lock(&self.store)
            .state()
            .connections
            .values()
            .filter(|c| c.workspace_id == ws && c.enabled)
            .cloned()
            .collect();
        // The workspace's "configuration order" (the first of two servers listing one resource
        // URI serves it): the connections' names, so it never depends on their random ids.
        conns.sort_by(|a, b| a.name.cmp(&b.name));
        let servers = conns
            .iter()
            .map(|c| self.server_config(c))
            .collect::<Result<Vec<_>, _>>()?;
        let audit = self.audit.clone();
        let runtime = Runtime::start(Arc::clone(&self.settings), ws, servers, Some(pins), audit)
            .map_err(|e| ApiError::new(500, "start_failed", e.to_string()))?;
        lock(&self.applied).extend(conns.iter().map(|c| (c.id.clone(), c.clone())));
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

    /// Stops `conn`'s running child, if its workspace is active, and waits for the teardown
    /// after releasing the runtimes lock: a teardown takes seconds and every agent request takes
    /// that lock.
    pub(super) fn tear_down(&self, conn: &Connection) {
        lock(&self.applied).remove(&conn.id);
        let retiring = lock(&self.runtimes)
            .get_mut(&conn.workspace_id)
            .and_then(|r| r.detach(&conn.name));
        if let Some(retiring) = retiring {
            retiring.join();
        }
    }

    /// Starts `conn`'s child in its running workspace (nothing when the workspace is not
    /// running), and remembers what it was started from.
    pub(super) fn start_connection(&self, conn: &Connection) -> Result<(), ApiError> {
        let server = self.server_config(conn)?;
        if let Some(runtime) = lock(&self.runtimes).get_mut(&conn.workspace_id) {
            runtime
                .add(server)
                .map_err(|e| ApiError::new(500, "start_failed", e.to_string()))?;
            lock(&self.applied).insert(conn.id.clone(), conn.clone());
        }
        Ok(())
    }

    /// The tool pins, where the state is kept.
    pub(super) fn pin_store(&self) -> Result<PinStore, ApiError> {
        let file = lock(&self.store).file().clone();
        let pins = if file.is_shared() {
            PinStore::open_at(file)
        } else {
            PinStore::open(&self.options.data_dir)
        };
        pins.map_err(ApiError::from)
    }

    /// Stops a workspace: its held calls are answered, its children stopped, its sessions ended.
    pub(super) fn stop_workspace(&self, ws: &str) {
        // Held calls of the workspace cannot run any more: their agents are told.
        self.approvals.cancel_workspace(ws);
        let runtime = lock(&self.runtimes).remove(ws);
        lock(&self.applied).retain(|_, c| c.workspace_id != ws);
        if let Some(runtime) = runtime {
            runtime.stop();
            log::info!("workspace {ws}: stopped");
        }
        // Their gate is gone with the runtime: nothing to unsubscribe from.
        drop(self.sessions.take(|s| s.workspace == ws));
    }
}
