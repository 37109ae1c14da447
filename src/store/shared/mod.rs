//! The shared store of `serve --store`: Valkey or Redis, which replicas of one gate share.
//!
//! Owns: the connection to the store (`redis://` or `rediss://`, the password from
//! `AEGIS_STORE_PASSWORD` only), a small pool of blocking connections, the timeout of every
//! command ([`TIMEOUT`]), whether the store answers ([`SharedStore::reachable`], logged when it
//! changes), and the key names every replica agrees on (all under `aegis:`). What is kept there
//! has a file each: the state document ([`document`]), the delegation replay cache and rate
//! counters ([`limits`]), the held calls of every replica and their inboxes ([`held`]), and the
//! heads of the replicas' audit chains ([`heads`]).
//! Never: holds a password in its URL, its errors or its logs; waits on the store longer than
//! [`TIMEOUT`] per command; keeps a connection that failed (the next command opens another).

pub(crate) mod document;
pub(crate) mod heads;
pub(crate) mod held;
pub(crate) mod limits;

use super::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The environment variable that holds the store's password (never the URL: it would be on the
/// command line, in `ps` and in shell histories).
pub(crate) const PASSWORD_ENV: &str = "AEGIS_STORE_PASSWORD";

/// The longest a connect, a command or its answer may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// Idle connections kept for the next command; more callers at once open their own.
const IDLE: usize = 8;

/// A connection to the shared store, cheap to clone.
#[derive(Clone)]
pub(crate) struct SharedStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// The URL as it may be shown (it never holds a password).
    shown: String,
    idle: Mutex<Vec<redis::Connection>>,
    reachable: AtomicBool,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("url", &self.inner.shown)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// The store at `url` (`redis://HOST:PORT/DB` or `rediss://…`), with `password` (from
    /// [`PASSWORD_ENV`]); answers a `PING` before it is returned, so a wrong address, password
    /// or database fails the start with its reason.
    pub(crate) fn connect(url: &str, password: Option<&str>) -> Result<SharedStore, Error> {
        let client = client(url, password)?;
        let store = SharedStore {
            inner: Arc::new(Inner {
                client,
                shown: shown(url),
                idle: Mutex::new(Vec::new()),
                reachable: AtomicBool::new(true),
            }),
        };
        store.run(|con| redis::cmd("PING").query::<String>(con))?;
        Ok(store)
    }

    /// [`SharedStore::connect`] with the password of [`PASSWORD_ENV`], if set.
    pub(crate) fn open(url: &str) -> Result<SharedStore, Error> {
        let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        SharedStore::connect(url, password.as_deref())
    }

    /// The store's URL, as it may be shown.
    pub(crate) fn url(&self) -> &str {
        &self.inner.shown
    }

    /// Whether the last command reached the store.
    pub(crate) fn reachable(&self) -> bool {
        self.inner.reachable.load(Ordering::SeqCst)
    }

    /// Runs `f` on a pooled connection. A failure to reach the store (connect, I/O, timeout)
    /// drops the connection and marks the store unreachable until a command succeeds again; an
    /// error the store answered (a script's refusal) leaves both as they are.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut con = match self.take() {
            Ok(con) => con,
            Err(e) => return Err(self.failed(&e)),
        };
        match f(&mut con) {
            Ok(out) => {
                self.give_back(con);
                self.mark(true, "");
                Ok(out)
            }
            Err(e) if lost(&e) => Err(self.failed(&e)),
            Err(e) => {
                self.give_back(con);
                Err(Error::Shared(format!("the shared store refused: {e}")))
            }
        }
    }

    /// A connection of its own (not pooled), for a caller that keeps it, as a subscriber does:
    /// connect and writes time out after [`TIMEOUT`], reads as the caller sets.
    pub(crate) fn dedicated(&self) -> Result<redis::Connection, Error> {
        let open = || {
            let con = self.inner.client.get_connection_with_timeout(TIMEOUT)?;
            con.set_write_timeout(Some(TIMEOUT))?;
            Ok(con)
        };
        open().map_err(|e: redis::RedisError| self.failed(&e))
    }

    fn take(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(con) = crate::thread::lock(&self.inner.idle).pop() {
            return Ok(con);
        }
        let con = self.inner.client.get_connection_with_timeout(TIMEOUT)?;
        con.set_read_timeout(Some(TIMEOUT))?;
        con.set_write_timeout(Some(TIMEOUT))?;
        Ok(con)
    }

    fn give_back(&self, con: redis::Connection) {
        let mut idle = crate::thread::lock(&self.inner.idle);
        if idle.len() < IDLE {
            idle.push(con);
        }
    }

    fn failed(&self, e: &redis::RedisError) -> Error {
        let reason = format!("the shared store at {} is unreachable: {e}", self.url());
        self.mark(false, &reason);
        // The other idle connections went the same way.
        crate::thread::lock(&self.inner.idle).clear();
        Error::Shared(reason)
    }

    fn mark(&self, reachable: bool, reason: &str) {
        let was = self.inner.reachable.swap(reachable, Ordering::SeqCst);
        match (was, reachable) {
            (true, false) => log::error!("{reason}"),
            (false, true) => log::warn!("the shared store at {} is reachable again", self.url()),
            _ => {}
        }
    }
}

/// `url` as it may be shown: without its user info (a URL refused for holding a password is
/// never echoed whole).
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".to_owned(),
    }
}

/// A Lua script of the store's, its SHA-1 computed once (`EVALSHA`, and the text itself only
/// when the store does not know it yet).
pub(crate) struct Lua {
    text: &'static str,
    script: std::sync::OnceLock<redis::Script>,
}

impl Lua {
    pub(crate) const fn new(text: &'static str) -> Lua {
        Lua {
            text,
            script: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn script(&self) -> &redis::Script {
        self.script.get_or_init(|| redis::Script::new(self.text))
    }
}

/// Whether `e` means the connection is gone (as opposed to an error the store answered).
fn lost(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}

/// The client of `url`, refused when the URL holds a password or is not `redis://`/`rediss://`.
fn client(url: &str, password: Option<&str>) -> Result<redis::Client, Error> {
    let bad = |why: &str| Error::Shared(format!("--store {:?}: {why}", shown(url)));
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| bad("expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB"))?;
    // The last `@` anywhere: a password may hold `/`, `?` or `#`, which end no user info here.
    if let Some((userinfo, _)) = rest.rsplit_once('@') {
        if userinfo.contains(':') {
            // Not echoed: the URL itself holds the password.
            return Err(Error::Shared(format!(
                "--store: the URL holds a password; put it in {PASSWORD_ENV} instead"
            )));
        }
    }
    let info = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| bad(&format!("not a store URL ({e})")))?;
    let info = match password {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(settings)
        }
        None => info,
    };
    match std::env::var_os(crate::http_client::CA_FILE_ENV).filter(|_| url.starts_with("rediss")) {
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| {
                bad(&format!(
                    "{}={}: {e}",
                    crate::http_client::CA_FILE_ENV,
                    std::path::Path::new(&path).display()
                ))
            })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, certs).map_err(|e| bad(&e.to_string()))
        }
        None => redis::Client::open(info).map_err(|e| bad(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused_without_echoing_it() {
        let err = client("redis://user:s3cret@127.0.0.1:6379/0", None)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(PASSWORD_ENV), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_password_holding_slashes_is_refused_and_never_echoed() {
        for url in [
            "redis://user:pa/ss@127.0.0.1:6379/0",
            "redis://:a#b?c@127.0.0.1:6379/0",
        ] {
            let err = client(url, None).expect_err("refused").to_string();
            assert!(err.contains(PASSWORD_ENV), "{err}");
            assert!(!err.contains("pa/ss") && !err.contains("a#b"), "{err}");
        }
        assert_eq!(shown("redis://u:p@h:1/0"), "redis://h:1/0");
        assert_eq!(shown("http://x/y z"), "http://x/y z");
        assert_eq!(shown("h:1"), "(not a URL)");
    }

    #[test]
    fn only_redis_urls_are_taken() {
        let err = client("http://127.0.0.1:6379", None)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("redis://HOST:PORT/DB"), "{err}");
        assert!(client("redis://127.0.0.1:6379/2", Some("pw")).is_ok());
        assert!(client("redis://acl-user@127.0.0.1:6379/2", Some("pw")).is_ok());
    }
}
