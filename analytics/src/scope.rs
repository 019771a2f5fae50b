//! Which tenant's types a read sees. The analytics of every tenant on a node are kept
//! together, each event type under [`type_key`]: the default tenant's types as they are,
//! another tenant's as `ACCOUNT␟PROJECT␟TYPE` (␟ being U+001F, the unit separator, which no
//! event type of the default tenant is taken to contain). A [`Scope`] reads one tenant's.

use std::borrow::Cow;

use weir_core::{Event, Tenant};

const SEP: char = '\u{1f}';

/// The name the analytics keep `e`'s type under (see the module docs).
pub fn type_key(e: &Event) -> Cow<'_, str> {
    if e.account == weir_core::tenant::DEFAULT_TENANT
        && e.project == weir_core::tenant::DEFAULT_TENANT
    {
        Cow::Borrowed(e.kind.as_str())
    } else {
        Cow::Owned(format!("{}{SEP}{}{SEP}{}", e.account, e.project, e.kind))
    }
}

/// One tenant's view of the types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `ACCOUNT␟PROJECT␟`, or empty for the default tenant.
    prefix: String,
}

impl Scope {
    /// The types of `tenant`.
    pub fn of(tenant: &Tenant) -> Self {
        let prefix = if tenant.is_default() {
            String::new()
        } else {
            format!("{}{SEP}{}{SEP}", tenant.account, tenant.project)
        };
        Self { prefix }
    }

    /// The stored name of this tenant's type `ty`.
    pub fn stored(&self, ty: &str) -> String {
        format!("{}{ty}", self.prefix)
    }

    /// `stored` as this tenant names it, or `None` if it is another tenant's type.
    pub fn own<'a>(&self, stored: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            (!stored.contains(SEP)).then_some(stored)
        } else {
            stored.strip_prefix(self.prefix.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_sees_its_own_types_only() {
        let mut e = Event::new("orders", 0, Default::default());
        assert_eq!(type_key(&e), "orders");
        e.account = "acme".into();
        let stored = type_key(&e).into_owned();
        let (d, a) = (Scope::default(), Scope::of(&Tenant::new("acme", "default")));
        assert_eq!(d.own(&stored), None);
        assert_eq!(a.own(&stored), Some("orders"));
        assert_eq!(a.own("orders"), None);
        assert_eq!(d.own("orders"), Some("orders"));
        assert_eq!(a.stored("orders"), stored);
    }
}
