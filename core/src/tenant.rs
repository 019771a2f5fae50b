//! Who owns data: an account and one of its projects (SPEC section 10).

use serde::{Deserialize, Serialize};

/// The account and project a call acts for: taken from its API key (or an input's
/// configuration), never from an event's body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tenant {
    /// The owning account.
    pub account: String,
    /// The account's project.
    pub project: String,
}

/// The account and project of a server without API keys.
pub const DEFAULT_TENANT: &str = "default";

impl Default for Tenant {
    fn default() -> Self {
        Self::new(DEFAULT_TENANT, DEFAULT_TENANT)
    }
}

impl Tenant {
    /// The tenant `account`/`project`.
    pub fn new(account: impl Into<String>, project: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            project: project.into(),
        }
    }

    /// Whether this is the tenant of a server without keys.
    pub fn is_default(&self) -> bool {
        self.account == DEFAULT_TENANT && self.project == DEFAULT_TENANT
    }

    /// Whether `e` belongs to this tenant.
    pub fn owns(&self, e: &crate::Event) -> bool {
        e.account == self.account && e.project == self.project
    }
}

impl std::fmt::Display for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.project)
    }
}
