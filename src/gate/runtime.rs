//! A running workspace: its connections, its merger and its gate, started and stopped together.
//!
//! Owns: the wiring both transports share (stdio serves one runtime; serve mode one per active
//! workspace), and live changes: a connection added to or removed from a running workspace joins
//! or leaves the merged view at once (agents get `notifications/tools/list_changed`).
//! Never: frames bytes or knows about a transport.
//!
//! Shutdown order: every connection (children torn down in parallel), then the merger.

use super::Gate;
use crate::config::{ServerConfig, Settings};
use crate::downstream::{self, ConnHandle, ConnectionManager, Retiring, Snapshot};
use crate::merger::{self, Merger, MergerHandle, MergerOptions, Request};
use crate::store::pins::PinStore;
use std::sync::Arc;

/// One workspace, running.
pub(crate) struct Runtime {
    gate: Arc<Gate>,
    manager: ConnectionManager,
    merger: Option<Merger>,
    merger_handle: MergerHandle,
}

impl Runtime {
    /// Starts `servers` under `workspace`, pinning into `pins`.
    pub(crate) fn start(
        settings: Arc<Settings>,
        workspace: &str,
        servers: Vec<ServerConfig>,
        pins: Option<PinStore>,
        audit: Option<Arc<crate::audit::Audit>>,
    ) -> Result<Runtime, downstream::Error> {
        let (events_tx, events_rx) = crossbeam_channel::bounded(merger::EVENT_QUEUE);
        let mut manager = ConnectionManager::new(Arc::clone(&settings), events_tx, audit);
        for server in servers {
            manager.add(server)?;
        }
        let options = MergerOptions {
            workspace: workspace.to_owned(),
            pins,
        };
        let (merger, merger_handle) =
            Merger::spawn(Arc::clone(&settings), options, manager.handles(), events_rx).map_err(
                |source| downstream::Error::Io {
                    name: format!("merger of {workspace}"),
                    source,
                },
            )?;
        let gate = Arc::new(Gate::new(settings, merger_handle.clone(), workspace));
        Ok(Runtime {
            gate,
            manager,
            merger: Some(merger),
            merger_handle,
        })
    }

    /// The gate agents talk to.
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Every connection's state.
    pub(crate) fn snapshots(&self) -> Vec<Snapshot> {
        self.manager
            .handles()
            .iter()
            .map(ConnHandle::snapshot)
            .collect()
    }

    /// The connection named `name`.
    pub(crate) fn connection(&self, name: &str) -> Option<ConnHandle> {
        self.manager.get(name)
    }

    /// Starts a connection now; its tools join the view when listed.
    pub(crate) fn add(&mut self, server: ServerConfig) -> Result<ConnHandle, downstream::Error> {
        let handle = self.manager.add(server)?;
        self.merger_handle.send(Request::AddServer(handle.clone()));
        Ok(handle)
    }

    /// Takes a connection out (its tools leave the view) and tells it to stop; join the result
    /// outside any lock that agents' requests also take.
    pub(crate) fn detach(&mut self, name: &str) -> Option<Retiring> {
        let retiring = self.manager.detach(name)?;
        self.merger_handle
            .send(Request::RemoveServer(retiring.handle().id()));
        Some(retiring)
    }

    /// Stops every connection, then the merger.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    /// Every connection's handle (for a last-resort kill at a second signal).
    pub(crate) fn handles(&self) -> Vec<ConnHandle> {
        self.manager.handles()
    }

    fn shutdown(&mut self) {
        self.manager.shutdown();
        if let Some(merger) = self.merger.take() {
            merger.stop();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
