//! API keys (SPEC section 10): each maps to an account and a project, and may be an admin
//! key. Keys are kept only as SHA-256 hashes: those of the configuration (`[[auth.keys]]`,
//! `WEIR_API_KEYS`) in memory, those created over the API also in the node's store, so they
//! survive a restart. A key is 128 random bits, so a plain hash is enough (no slow KDF: a
//! guess costs an attacker 2^127 tries whatever the hash).
//!
//! Rotation without downtime: a tenant may have any number of keys at once; create the new
//! key, move the clients, delete the old one.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use weir_core::Tenant;

/// Where the keys created over the API are kept in the node's meta data.
pub const STORED_KEYS: &str = "auth/keys";

/// One key as configured: the key itself or its SHA-256, and whom it acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A label for logs and listings.
    #[serde(default)]
    pub name: String,
    /// The account the key acts for.
    pub account: String,
    /// The project of the account.
    pub project: String,
    /// The key in clear (hashed on load, never kept); or give `sha256` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's SHA-256, hex (what `weir key new` prints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether the key may manage keys (and read `/metrics`).
    #[serde(default)]
    pub admin: bool,
}

/// A known key, by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Short public id: the first 12 hex digits of the hash.
    pub id: String,
    /// A label.
    pub name: String,
    /// Whom the key acts for.
    pub tenant: Tenant,
    /// Whether it may manage keys.
    pub admin: bool,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// `config` (from the configuration; not removable over the API) or `api`.
    pub source: String,
    /// When it was created over the API (unix ms), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
}

impl KeyEntry {
    /// The listing form (no hash).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "account": self.tenant.account,
            "project": self.tenant.project,
            "admin": self.admin,
            "source": self.source,
            "created_at": self.created_at,
        })
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account and project.
    pub tenant: Tenant,
    /// Whether the key is an admin key (always, when no keys are configured).
    pub admin: bool,
}

/// The SHA-256 of `key`, hex.
pub fn hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: `wk_` and 32 hex digits (128 bits from the OS).
pub fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(format!("wk_{}", hex(&bytes)))
}

/// Account and project names: 1–64 of `A-Z a-z 0-9 _ . -`.
pub fn check_name(what: &str, v: &str) -> anyhow::Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    anyhow::ensure!(
        ok,
        "{what} {v:?} is not a valid name: use 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-'"
    );
    Ok(())
}

impl KeyConfig {
    /// The entry this configures.
    pub fn entry(&self, source: &str) -> anyhow::Result<KeyEntry> {
        check_name("account", &self.account)?;
        check_name("project", &self.project)?;
        let sha256 = match (&self.key, &self.sha256) {
            (Some(k), None) => {
                anyhow::ensure!(
                    k.len() >= 16,
                    "API key {:?}: a key needs at least 16 characters",
                    self.name
                );
                hash(k)
            }
            (None, Some(h)) => {
                let h = h.trim().to_ascii_lowercase();
                anyhow::ensure!(
                    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
                    "API key {:?}: sha256 must be 64 hex digits",
                    self.name
                );
                h
            }
            _ => anyhow::bail!(
                "API key {:?}: give exactly one of `key` and `sha256`",
                self.name
            ),
        };
        Ok(KeyEntry {
            id: sha256[..12].to_string(),
            name: self.name.clone(),
            tenant: Tenant::new(&self.account, &self.project),
            admin: self.admin,
            sha256,
            source: source.to_string(),
            created_at: None,
        })
    }
}

/// `account:project:key[:admin]`, comma-separated (the `WEIR_API_KEYS` variable).
pub fn parse_env(v: &str) -> anyhow::Result<Vec<KeyConfig>> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, item)| {
            let parts: Vec<&str> = item.split(':').collect();
            let (account, project, key, admin) = match parts.as_slice() {
                [a, p, k] => (a, p, k, false),
                [a, p, k, "admin"] => (a, p, k, true),
                _ => anyhow::bail!(
                    "WEIR_API_KEYS item {}: expected account:project:key or account:project:key:admin",
                    i + 1
                ),
            };
            Ok(KeyConfig {
                name: format!("env-{}", i + 1),
                account: account.to_string(),
                project: project.to_string(),
                key: Some(key.to_string()),
                sha256: None,
                admin,
            })
        })
        .collect()
}

/// Every key the node knows, by hash.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: RwLock<BTreeMap<String, KeyEntry>>,
}

impl KeyRing {
    /// The configured keys (checked: a bad entry, or one key given twice, is an error).
    pub fn from_config(keys: &[KeyConfig]) -> anyhow::Result<Self> {
        let ring = KeyRing::default();
        for k in keys {
            ring.insert(k.entry("config")?)?;
        }
        Ok(ring)
    }

    /// Add an entry; refused if its hash is known already.
    pub fn insert(&self, e: KeyEntry) -> anyhow::Result<()> {
        let mut keys = self.keys.write();
        anyhow::ensure!(
            !keys.contains_key(&e.sha256),
            "API key {:?} is configured twice",
            e.name
        );
        keys.insert(e.sha256.clone(), e);
        Ok(())
    }

    /// Whether any key is configured: then every call needs one.
    pub fn enabled(&self) -> bool {
        !self.keys.read().is_empty()
    }

    /// Who `key` acts for, if it is known.
    pub fn find(&self, key: &str) -> Option<Caller> {
        let keys = self.keys.read();
        keys.get(&hash(key)).map(|e| Caller {
            tenant: e.tenant.clone(),
            admin: e.admin,
        })
    }

    /// Every key, ordered by account, project, id.
    pub fn list(&self) -> Vec<KeyEntry> {
        let mut v: Vec<KeyEntry> = self.keys.read().values().cloned().collect();
        v.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        v
    }

    /// The keys created over the API (to store).
    pub fn stored(&self) -> Vec<KeyEntry> {
        self.list()
            .into_iter()
            .filter(|e| e.source == "api")
            .collect()
    }

    /// Remove the API-created key `id`; the removed entry, or why not.
    pub fn remove(&self, id: &str) -> Result<KeyEntry, RemoveError> {
        let mut keys = self.keys.write();
        let (hash, e) = keys
            .iter()
            .find(|(_, e)| e.id == id)
            .map(|(h, e)| (h.clone(), e.clone()))
            .ok_or(RemoveError::Unknown)?;
        if e.source != "api" {
            return Err(RemoveError::Configured);
        }
        keys.remove(&hash);
        Ok(e)
    }
}

/// Why a key cannot be removed.
#[derive(Debug, PartialEq, Eq)]
pub enum RemoveError {
    /// No key has that id.
    Unknown,
    /// It comes from the configuration: remove it there.
    Configured,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(account: &str, key: &str, admin: bool) -> KeyConfig {
        KeyConfig {
            name: account.into(),
            account: account.into(),
            project: "web".into(),
            key: Some(key.into()),
            sha256: None,
            admin,
        }
    }

    #[test]
    fn keys_are_found_by_hash_only_and_never_kept_in_clear() {
        let ring = KeyRing::from_config(&[
            cfg("acme", "acme-key-0123456789", false),
            KeyConfig {
                key: None,
                sha256: Some(hash("beta-key-0123456789")),
                ..cfg("beta", "", true)
            },
        ])
        .unwrap();
        assert!(ring.enabled());
        let a = ring.find("acme-key-0123456789").unwrap();
        assert_eq!((a.tenant.account.as_str(), a.admin), ("acme", false));
        assert!(ring.find("beta-key-0123456789").unwrap().admin);
        assert_eq!(ring.find("acme-key-012345678"), None);
        let listed = format!("{:?}", ring.list());
        assert!(!listed.contains("acme-key-0123456789"));
        assert_eq!(
            ring.remove(&ring.list()[0].id),
            Err(RemoveError::Configured)
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let err = |k: KeyConfig| KeyRing::from_config(&[k]).unwrap_err().to_string();
        assert!(err(cfg("ac/me", "0123456789abcdef", false)).contains("not a valid name"));
        assert!(err(cfg("acme", "short", false)).contains("at least 16"));
        let twice = KeyRing::from_config(&[
            cfg("acme", "0123456789abcdef", false),
            cfg("beta", "0123456789abcdef", false),
        ]);
        assert!(twice.unwrap_err().to_string().contains("twice"));
        let env = parse_env("acme:web:0123456789abcdef, ops:all:fedcba9876543210:admin").unwrap();
        assert_eq!(env.len(), 2);
        assert!(env[1].admin && !env[0].admin);
        assert!(parse_env("acme:0123456789abcdef").is_err());
        let k = new_key().unwrap();
        assert!(k.starts_with("wk_") && k.len() == 35);
        assert_ne!(k, new_key().unwrap());
    }
}
