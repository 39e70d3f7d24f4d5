//! One lock for the tests of a binary that must not overlap: a test that stops a service every
//! other test uses (PostgreSQL, the Docker engine) or loads the machine to measure it holds
//! [`exclusive`]; every other test of that binary holds [`shared`] (or [`shared_blocking`] in
//! a plain `#[test]`), so none of them runs during the outage. Waiting is first come, first
//! served: an exclusive test waits for the running shared ones, and tests that ask after it
//! wait for it.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOCK: RwLock<()> = RwLock::const_new(());

/// Held while the test may run beside other ordinary tests.
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    LOCK.read().await
}

/// [`shared`] for a test outside any async runtime.
pub fn shared_blocking() -> RwLockReadGuard<'static, ()> {
    LOCK.blocking_read()
}

/// Held while the test runs alone in its binary.
pub async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    LOCK.write().await
}
