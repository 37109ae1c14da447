//! Named threads that are joined, never forgotten.
//!
//! Owns: [`JoinOnDrop`], the only way the gate spawns a thread, and [`lock`], the one way a
//! mutex is locked (a poisoned lock is taken over, not propagated as a panic). Dropping the handle joins the
//! thread and logs a panic it ended with.
//! Never: detaches silently; the one thread that may be left running (the stdin reader blocked
//! in `read` at a signal) is let go through [`JoinOnDrop::detach`], with a reason at the call site.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};

/// Locks a mutex, taking the data of a poisoned one: a thread that panicked while holding it has
/// been logged already, and every structure guarded here stays valid between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A thread handle that joins on drop.
#[derive(Debug)]
pub(crate) struct JoinOnDrop<T> {
    name: String,
    handle: Option<JoinHandle<T>>,
}

/// Spawns a named thread.
pub(crate) fn spawn<F, T>(name: impl Into<String>, f: F) -> io::Result<JoinOnDrop<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = name.into();
    let handle = Builder::new().name(name.clone()).spawn(f)?;
    Ok(JoinOnDrop {
        name,
        handle: Some(handle),
    })
}

impl<T> JoinOnDrop<T> {
    /// Waits for the thread; `None` when it panicked (the panic is logged).
    pub(crate) fn join(mut self) -> Option<T> {
        self.join_inner()
    }

    /// Lets the thread run on unjoined. Only for a thread blocked in a call that cannot be
    /// interrupted, at process exit.
    pub(crate) fn detach(mut self) {
        self.handle.take();
    }

    fn join_inner(&mut self) -> Option<T> {
        let handle = self.handle.take()?;
        match handle.join() {
            Ok(value) => Some(value),
            Err(_) => {
                log::error!("thread {} panicked", self.name);
                None
            }
        }
    }
}

impl<T> Drop for JoinOnDrop<T> {
    fn drop(&mut self) {
        self.join_inner();
    }
}
