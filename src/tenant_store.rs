//! One tenant's view of the node's storage: isolation enforced where the data is read.
//!
//! Every tenant's app (see [`crate::tenants`]) reaches storage only through a
//! [`TenantStore`], which confines each call to the tenant's account and project:
//! - event reads ([`Storage::scan`], [`Storage::scan_range`], [`Storage::newest_event_ts`])
//!   are asked for the tenant's account and project, whatever the caller put in the query;
//!   [`Storage::scan_seq`] yields only the tenant's records;
//! - catalogue names, state scopes and meta keys get the tenant's prefix `t/ACCOUNT/PROJECT/`
//!   (listing strips it and leaves out other tenants' entries).
//!
//! The default tenant (a server without keys) has no prefix, so a store written before
//! tenants existed reads as the default tenant's; it never sees prefixed entries, because a
//! query or rule name, a scope and a meta key of its own never contain the prefix's `t/`
//! start followed by a tenant (names are identifiers, scopes start with `q/` or `insights`).
//!
//! The event log itself ([`Storage::append`], [`Storage::sync`], [`Storage::last_seq`]) is the
//! node's: one log, one sequence, every tenant's records in it.

use std::sync::Arc;

use weir_core::{Millis, Tenant};
use weir_storage::{
    CatalogKind, EventIter, EventPage, EventQuery, LogRecord, MetaPrune, RangeQuery, RecordIter,
    Result, StateIter, StateKeyWrite, Storage,
};

/// The storage of one tenant (see the module docs).
pub struct TenantStore {
    inner: Arc<dyn Storage>,
    tenant: Tenant,
    /// `t/ACCOUNT/PROJECT/`, or empty for the default tenant.
    prefix: String,
}

/// The prefix of a tenant's names, scopes and keys (empty for the default tenant).
pub fn prefix_of(tenant: &Tenant) -> String {
    if tenant.is_default() {
        String::new()
    } else {
        format!("t/{}/{}/", tenant.account, tenant.project)
    }
}

/// The tenants that have catalogue entries or meta keys under their prefix, from stored names
/// like `t/ACCOUNT/PROJECT/name`.
pub fn tenant_of_name(name: &str) -> Option<Tenant> {
    let rest = name.strip_prefix("t/")?;
    let mut parts = rest.splitn(3, '/');
    let (account, project, _) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Tenant::new(account, project))
}

impl TenantStore {
    /// `tenant`'s view of `inner`.
    pub fn new(inner: Arc<dyn Storage>, tenant: Tenant) -> Self {
        let prefix = prefix_of(&tenant);
        Self {
            inner,
            tenant,
            prefix,
        }
    }

    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A stored name back as the tenant sees it, or `None` if it is not the tenant's.
    fn own<'a>(&self, stored: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            // The default tenant's entries are the ones without any tenant's prefix.
            tenant_of_name(stored).is_none().then_some(stored)
        } else {
            stored.strip_prefix(self.prefix.as_str())
        }
    }

    fn confine_query(&self, q: &EventQuery) -> EventQuery {
        EventQuery {
            account: self.tenant.account.clone(),
            project: self.tenant.project.clone(),
            ..q.clone()
        }
    }
}

impl Storage for TenantStore {
    fn append(&self, records: &[LogRecord], meta: &[(String, Vec<u8>)]) -> Result<()> {
        self.inner.append(records, meta)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta_get(&self.name(key))
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.meta_put(&self.name(key), value)
    }

    fn meta_cas(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        self.inner.meta_cas(&self.name(key), expected, value)
    }

    fn meta_prune(&self, prefix: &str, remove: &dyn Fn(&[u8]) -> bool) -> Result<MetaPrune> {
        self.inner.meta_prune(&self.name(prefix), remove)
    }

    fn meta_scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.map(|a| self.name(a));
        let rows = self
            .inner
            .meta_scan(&self.name(prefix), after.as_deref(), limit)?;
        Ok(rows
            .into_iter()
            .filter(|(k, _)| self.own(k).is_some())
            .map(|(k, v)| (k[self.prefix.len()..].to_string(), v))
            .collect())
    }

    fn last_seq(&self) -> Result<u64> {
        self.inner.last_seq()
    }

    fn scan_seq(&self, after_seq: u64) -> Result<RecordIter<'_>> {
        let it = self.inner.scan_seq(after_seq)?;
        Ok(Box::new(it.filter(move |r| match r {
            Ok(r) => self.tenant.owns(&r.event),
            Err(_) => true,
        })))
    }

    fn scan(&self, q: &EventQuery) -> Result<EventPage> {
        self.inner.scan(&self.confine_query(q))
    }

    fn scan_range(&self, q: &RangeQuery) -> Result<EventIter<'_>> {
        self.inner.scan_range(&RangeQuery {
            account: self.tenant.account.clone(),
            project: self.tenant.project.clone(),
            ..q.clone()
        })
    }

    fn newest_event_ts(
        &self,
        _account: &str,
        _project: &str,
        types: &[String],
    ) -> Result<Option<Millis>> {
        self.inner
            .newest_event_ts(&self.tenant.account, &self.tenant.project, types)
    }

    fn catalog_put(&self, kind: CatalogKind, name: &str, text: &str) -> Result<()> {
        self.inner.catalog_put(kind, &self.name(name), text)
    }

    fn catalog_delete(&self, kind: CatalogKind, name: &str) -> Result<bool> {
        self.inner.catalog_delete(kind, &self.name(name))
    }

    fn catalog_list(&self, kind: CatalogKind) -> Result<Vec<(String, String)>> {
        Ok(self
            .inner
            .catalog_list(kind)?
            .into_iter()
            .filter_map(|(n, text)| self.own(&n).map(|n| (n.to_string(), text)))
            .collect())
    }

    fn state_write(&self, scope: &str, part: u32, keys: &[StateKeyWrite]) -> Result<()> {
        self.inner.state_write(&self.name(scope), part, keys)
    }

    fn state_read(&self, scope: &str, part: u32) -> Result<StateIter<'_>> {
        self.inner.state_read(&self.name(scope), part)
    }

    fn state_drop(&self, scope: &str, parts: u32) -> Result<()> {
        self.inner.state_drop(&self.name(scope), parts)
    }

    fn record_decision(&self, seq: u64, json: &[u8]) -> Result<()> {
        self.inner.record_decision(seq, json)
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.recent_decisions(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::Event;
    use weir_storage::{EmbeddedConfig, EmbeddedStore};

    fn event(t: &Tenant, kind: &str, ts: i64) -> Event {
        let mut e = Event::new(kind, ts, Default::default());
        e.account = t.account.clone();
        e.project = t.project.clone();
        e
    }

    #[test]
    fn each_tenant_sees_only_its_own_events_names_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Storage> =
            Arc::new(EmbeddedStore::open(dir.path(), &EmbeddedConfig::default()).unwrap());
        let (d, a, b) = (
            Tenant::default(),
            Tenant::new("acme", "web"),
            Tenant::new("beta", "web"),
        );
        let records: Vec<LogRecord> = [&d, &a, &b, &a]
            .iter()
            .enumerate()
            .map(|(i, t)| LogRecord {
                seq: i as u64 + 1,
                event: event(t, "orders", 1000 + i as i64),
                denied: false,
            })
            .collect();
        inner.append(&records, &[]).unwrap();
        let views: Vec<TenantStore> = [&d, &a, &b]
            .iter()
            .map(|t| TenantStore::new(inner.clone(), (*t).clone()))
            .collect();
        for (v, name) in views.iter().zip(["d", "a", "b"]) {
            v.catalog_put(CatalogKind::Query, "q", &format!("text {name}"))
                .unwrap();
            v.meta_put("schemas", name.as_bytes()).unwrap();
        }
        let seqs = |v: &TenantStore| -> Vec<u64> {
            v.scan_seq(0).unwrap().map(|r| r.unwrap().seq).collect()
        };
        assert_eq!(seqs(&views[0]), vec![1]);
        assert_eq!(seqs(&views[1]), vec![2, 4]);
        assert_eq!(seqs(&views[2]), vec![3]);
        // A query naming another tenant is confined to the caller's.
        let q = EventQuery {
            account: "beta".into(),
            project: "web".into(),
            limit: 10,
            ..Default::default()
        };
        let page = views[1].scan(&q).unwrap();
        assert_eq!(page.total, 2);
        assert!(page.events.iter().all(|e| e.event.account == "acme"));
        for (v, name) in views.iter().zip(["d", "a", "b"]) {
            assert_eq!(
                v.catalog_list(CatalogKind::Query).unwrap(),
                vec![("q".to_string(), format!("text {name}"))]
            );
            assert_eq!(v.meta_get("schemas").unwrap().unwrap(), name.as_bytes());
        }
        assert_eq!(
            views[2].newest_event_ts("acme", "web", &[]).unwrap(),
            Some(1002)
        );
        assert!(views[1].catalog_delete(CatalogKind::Query, "q").unwrap());
        assert_eq!(views[2].catalog_list(CatalogKind::Query).unwrap().len(), 1);
        assert_eq!(
            tenant_of_name("t/acme/web/q"),
            Some(Tenant::new("acme", "web"))
        );
    }
}
