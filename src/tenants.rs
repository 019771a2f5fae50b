//! The node's tenants: one [`App`] per (account, project), each with its own queries, rules,
//! schemas and state, over the node's one log and store (see [`crate::tenant_store`]), and
//! the API keys that say who a call acts for (see [`crate::access`]).
//!
//! Isolation is by construction: a call reaches only the app of its key's tenant, that app's
//! engine holds only its tenant's queries, and its storage view reads only its tenant's
//! events, names and state.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use weir_core::Tenant;

use crate::access::{KeyEntry, KeyRing};
use crate::app::{App, Node};

/// Every tenant's app on this node, and the keys.
pub struct Hub {
    node: Arc<Node>,
    apps: RwLock<HashMap<Tenant, Arc<App>>>,
    keys: KeyRing,
    /// Serialises key changes over the API (each rewrites the stored set).
    key_changes: tokio::sync::Mutex<()>,
    /// This node's part of a cluster, in cluster mode (set once, on start).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Hub {
    /// The hub of `node`, with the configured keys.
    pub fn new(node: Arc<Node>, keys: KeyRing) -> Self {
        Self {
            node,
            apps: RwLock::new(HashMap::new()),
            keys,
            key_changes: tokio::sync::Mutex::new(()),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// This node's part of a cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Join a cluster (once, on start).
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// What the tenants share.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The API keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The app of `tenant`, if it is known (restored on start or added since).
    pub fn app(&self, tenant: &Tenant) -> Option<Arc<App>> {
        self.apps.read().get(tenant).cloned()
    }

    /// The app of a server without keys.
    pub fn default_app(&self) -> Arc<App> {
        self.app(&Tenant::default())
            .expect("the default tenant is always restored first")
    }

    /// Every tenant's app, the default tenant's first.
    pub fn apps(&self) -> Vec<Arc<App>> {
        let mut v: Vec<Arc<App>> = self.apps.read().values().cloned().collect();
        v.sort_by(|a, b| {
            (!a.tenant().is_default(), a.tenant()).cmp(&(!b.tenant().is_default(), b.tenant()))
        });
        v
    }

    /// Restore `tenants` (and the default tenant, with the node's analytics, when it is among
    /// them) from the store and add their apps: on start every known tenant at once, later
    /// one new tenant at a time. Tenants known already are left as they are. Returns the
    /// events replayed.
    pub async fn restore(&self, tenants: Vec<Tenant>) -> anyhow::Result<u64> {
        let fresh: Vec<Arc<App>> = {
            let apps = self.apps.read();
            let mut seen = std::collections::HashSet::new();
            tenants
                .into_iter()
                .filter(|t| !apps.contains_key(t) && seen.insert(t.clone()))
                .map(|t| Arc::new(App::new(self.node.clone(), t)))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let replayed = App::blocking_all(&self.node, fresh.clone(), |cxs, whole| {
            crate::recovery::restore(cxs, whole)
        })
        .await?;
        let mut apps = self.apps.write();
        for app in fresh {
            apps.entry(app.tenant().clone()).or_insert(app);
        }
        Ok(replayed)
    }

    /// The app of `tenant`, restored first if it is new (a key created over the API for a
    /// tenant the node has not served yet).
    pub async fn ensure(&self, tenant: &Tenant) -> anyhow::Result<Arc<App>> {
        if let Some(app) = self.app(tenant) {
            return Ok(app);
        }
        self.restore(vec![tenant.clone()]).await?;
        Ok(self.app(tenant).expect("restored just now"))
    }

    /// Load the keys created over the API (on start).
    pub async fn load_keys(&self) -> anyhow::Result<()> {
        let stored = self
            .node
            .store()
            .run(|s| s.meta_get(crate::access::STORED_KEYS))
            .await?;
        if let Some(bytes) = stored {
            let entries: Vec<KeyEntry> = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("stored API keys are unreadable: {e}"))?;
            for e in entries {
                self.keys.insert(e)?;
            }
        }
        Ok(())
    }

    /// Every tenant something on the node belongs to: the default one, those of the keys,
    /// those of the inputs, and those with stored definitions.
    pub async fn known_tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        let mut tenants = vec![Tenant::default()];
        tenants.extend(self.keys.list().into_iter().map(|e| e.tenant));
        for input in ["udp", "amqp", "kafka"] {
            tenants.push(self.node.cfg().auth.input_tenant(input)?);
        }
        let named = self
            .node
            .store()
            .run(|s| -> weir_storage::Result<Vec<Tenant>> {
                let mut v = Vec::new();
                for kind in [
                    weir_storage::CatalogKind::Query,
                    weir_storage::CatalogKind::Rule,
                ] {
                    v.extend(
                        s.catalog_list(kind)?
                            .iter()
                            .filter_map(|(n, _)| crate::tenant_store::tenant_of_name(n)),
                    );
                }
                Ok(v)
            })
            .await?;
        tenants.extend(named);
        Ok(tenants)
    }

    /// Create a key for `tenant` over the API: stored (hashed) first, then known. Returns
    /// the key in clear (shown once) and its entry.
    pub async fn create_key(
        &self,
        tenant: Tenant,
        name: String,
        admin: bool,
    ) -> anyhow::Result<(String, KeyEntry)> {
        crate::access::check_name("account", &tenant.account)?;
        crate::access::check_name("project", &tenant.project)?;
        let _one = self.key_changes.lock().await;
        self.ensure(&tenant).await?;
        let key = crate::access::new_key()?;
        let sha256 = crate::access::hash(&key);
        let entry = KeyEntry {
            id: sha256[..12].to_string(),
            name,
            tenant,
            admin,
            sha256,
            source: "api".into(),
            created_at: Some(self.node.clock().now_ms()),
        };
        let mut stored = self.keys.stored();
        stored.push(entry.clone());
        self.store_keys(stored).await?;
        self.keys.insert(entry.clone())?;
        Ok((key, entry))
    }

    /// Remove the API-created key `id`: forgotten first, then the stored set rewritten.
    pub async fn delete_key(&self, id: &str) -> Result<KeyEntry, DeleteKeyError> {
        let _one = self.key_changes.lock().await;
        let removed = self.keys.remove(id).map_err(DeleteKeyError::Refused)?;
        if let Err(e) = self.store_keys(self.keys.stored()).await {
            // Not stored: keep it, so memory and store agree.
            let _ = self.keys.insert(removed);
            return Err(DeleteKeyError::Storage(e));
        }
        Ok(removed)
    }

    async fn store_keys(&self, entries: Vec<KeyEntry>) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(&entries)?;
        self.node
            .store()
            .run(move |s| s.meta_put(crate::access::STORED_KEYS, &bytes))
            .await?;
        Ok(())
    }
}

/// Why a key was not deleted.
#[derive(Debug)]
pub enum DeleteKeyError {
    /// Unknown, or from the configuration.
    Refused(crate::access::RemoveError),
    /// The store did not take the change.
    Storage(anyhow::Error),
}
