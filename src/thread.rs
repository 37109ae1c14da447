//! Named threads that are joined, never forgotten.
//!
//! Owns: [`JoinOnDrop`], the only way the gate spawns a thread, and [`lock`], [`read`] and
//! [`write`], the one way a lock is taken (a poisoned lock is taken over, not propagated as a
//! panic: the thread that panicked was logged, and every structure guarded stays valid between
//! statements). Dropping the handle joins the thread and logs a panic it ended with.
//! Never: detaches silently; the threads that may be left running (the stdio gate's stdin reader
//! and stdout writer, blocked in `read` or `write` at exit, and the bridge's event reader) are let
//! go through [`JoinOnDrop::detach`], each with its reason at the call site.

use std::io;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{Builder, JoinHandle};

/// Locks a mutex, taking the data of a poisoned one: a thread that panicked while holding it has
/// been logged already, and every structure guarded here stays valid between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads an `RwLock`, taking over a poisoned one (as [`lock`]).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes an `RwLock`, taking over a poisoned one (as [`lock`]).
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
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
