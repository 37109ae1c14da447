//! `aegis-gate serve`: the gate as an HTTP service.
//!
//! Owns: starting the HTTP front on `--listen`, announcing the bound address on stdout, and the
//! shutdown on SIGTERM/SIGINT (stop taking requests, let those being handled finish, exit 0).
//! Never: runs without a data dir it can write (created 0700 on first start).
//!
//! Threads: the front's workers; the calling thread waits for the first signal and stops them.

use super::front::{Front, FrontConfig};
use crate::store;
use std::io::{self, Write};
use std::path::Path;

/// Serves until SIGTERM or SIGINT.
pub fn run(config: &FrontConfig, data_dir: &Path) -> io::Result<()> {
    store::ensure_data_dir(data_dir).map_err(|e| io::Error::other(e.to_string()))?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let front = Front::start(config, super::routes())?;
    log::info!(
        "serving on http://{} (data dir {})",
        front.addr(),
        data_dir.display()
    );
    // The one line of stdout: tests and scripts read the port from it when `--listen` had port 0.
    let mut out = io::stdout().lock();
    writeln!(out, "listening on http://{}", front.addr())?;
    out.flush()?;
    let signal = signals.forever().next();
    log::info!("signal {signal:?}: stopping");
    front.stop();
    log::info!("stopped");
    Ok(())
}
