//! The server's handle on its storage. The [`Storage`] trait is synchronous (an fsync, a
//! Cassandra round trip); a [`Store`] offers it only through [`Store::run`], which runs the
//! call on tokio's blocking threads, and through the log writer's own thread. So no storage
//! call can run on an async worker thread: the types do not allow it.

use std::sync::Arc;

use weir_storage::{GroupCommit, Storage};

/// Storage reachable only off the async workers.
#[derive(Clone)]
pub struct Store(Arc<dyn Storage>);

impl Store {
    /// Wrap an opened backend.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self(inner)
    }

    /// Run `f` with the storage on a blocking thread. A panic in `f` resumes here.
    pub async fn run<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&dyn Storage) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.0.clone();
        match tokio::task::spawn_blocking(move || f(&*inner)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only when the runtime shuts down under a running call.
            Err(e) => panic!("a storage call was cancelled: {e}"),
        }
    }

    /// `tenant`'s view of this storage (see [`crate::tenant_store`]).
    pub fn scoped(&self, tenant: &weir_core::Tenant) -> Store {
        Store(Arc::new(crate::tenant_store::TenantStore::new(
            self.0.clone(),
            tenant.clone(),
        )))
    }

    /// The storage itself, for code already on a blocking thread.
    pub(crate) fn handle(&self) -> Arc<dyn Storage> {
        self.0.clone()
    }

    /// Start the group-commit log writer on its own thread over this storage.
    pub fn start_log(&self, durable: bool) -> GroupCommit {
        GroupCommit::start(self.0.clone(), durable)
    }
}
