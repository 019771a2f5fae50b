//! The settings of the Cassandra/Scylla backend: [`CassandraConfig`] and its parts.
//!
//! Every type here deserialises from the server's TOML config and serialises back (the server
//! prints its effective config), with the password shown as `"***"`. [`Replication`] and
//! [`Consistency`] also parse from the short strings a command-line flag takes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Settings of the Cassandra/Scylla backend.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    /// Contact points, `host:port` (default `["127.0.0.1:9042"]`).
    pub nodes: Vec<String>,
    /// Keyspace, created if missing (default `"weir"`).
    pub keyspace: String,
    /// Replication used when the keyspace is created (default `simple:1`). An existing
    /// keyspace keeps its own.
    pub replication: Replication,
    /// Consistency level of every read and write (default `LOCAL_QUORUM`).
    pub consistency: Consistency,
    /// The local data centre: when set, requests go to its nodes only (datacenter-aware,
    /// token-aware load balancing without failover to other data centres).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_dc: Option<String>,
    /// User name for password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for password authentication; never printed (`"***"` in Debug and Serialize).
    #[serde(serialize_with = "redacted", skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// TLS to the nodes; plain TCP when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<CassandraTls>,
    /// Time allowed to open a connection, in ms (default 5000).
    pub connect_timeout_ms: u64,
    /// Time allowed for one request (with its retries), in ms (default 2000). A node that
    /// stops answering makes calls fail after about this long, with a transient error.
    pub request_timeout_ms: u64,
    /// Requests in flight at once within one call (an append's rows, a state write's keys;
    /// default 256).
    pub concurrency: usize,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "weir".into(),
            replication: Replication::default(),
            consistency: Consistency::default(),
            local_dc: None,
            username: None,
            password: None,
            tls: None,
            connect_timeout_ms: 5000,
            request_timeout_ms: 2000,
            concurrency: 256,
        }
    }
}

impl fmt::Debug for CassandraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CassandraConfig")
            .field("nodes", &self.nodes)
            .field("keyspace", &self.keyspace)
            .field("replication", &self.replication)
            .field("consistency", &self.consistency)
            .field("local_dc", &self.local_dc)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

fn redacted<S: Serializer>(password: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match password {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

/// TLS to the nodes (rustls). The server's certificate is checked against `ca_file` and the
/// name `server_name` (default: the node's IP address, which the certificate must then list).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CassandraTls {
    /// PEM file of the certificate authorities that sign the nodes' certificates.
    pub ca_file: PathBuf,
    /// PEM certificate chain for client authentication (with `key_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key for client authentication (with `cert_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The name the nodes' certificates are checked against, instead of their IP addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// How a new keyspace is replicated.
///
/// TOML: `{ class = "SimpleStrategy", factor = 3 }` or
/// `{ class = "NetworkTopologyStrategy", dc1 = 3, dc2 = 2 }`; a flag: `simple:3` or
/// `dc1:3,dc2:2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy`: `factor` copies, placed without regard to data centres.
    Simple {
        /// Copies of each row.
        factor: u32,
    },
    /// `NetworkTopologyStrategy`: copies per data centre.
    NetworkTopology {
        /// Data centre name → copies of each row there.
        dcs: BTreeMap<String, u32>,
    },
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple { factor: 1 }
    }
}

fn valid_dc(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Replication {
    /// The CQL map of `CREATE KEYSPACE ... WITH replication = ...`.
    pub(super) fn cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology { dcs } => {
                let mut s = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, n) in dcs {
                    s.push_str(&format!(", '{dc}': {n}"));
                }
                s.push('}');
                s
            }
        }
    }

    /// Refuse what would make an invalid or unusable keyspace.
    pub(super) fn check(&self) -> Result<(), String> {
        match self {
            Replication::Simple { factor: 0 } => {
                Err("replication factor must be at least 1".into())
            }
            Replication::Simple { .. } => Ok(()),
            Replication::NetworkTopology { dcs } if dcs.is_empty() => {
                Err("NetworkTopologyStrategy needs at least one data centre".into())
            }
            Replication::NetworkTopology { dcs } => {
                for (dc, n) in dcs {
                    if !valid_dc(dc) {
                        return Err(format!(
                            "data centre name {dc:?} must be letters, digits, '_', '-' and '.'"
                        ));
                    }
                    if *n == 0 {
                        return Err(format!("replication factor of {dc} must be at least 1"));
                    }
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Replication {
    type Err = String;

    /// `simple:N`, or `dc:N,dc:N,...` for NetworkTopologyStrategy.
    fn from_str(s: &str) -> Result<Self, String> {
        let factor = |dc: &str, n: &str| {
            n.trim()
                .parse::<u32>()
                .map_err(|_| format!("replication factor of {dc} must be a number, not {n:?}"))
        };
        let bad = || format!("replication {s:?}: expected \"simple:N\" or \"dc1:N,dc2:M\"");
        let s = s.trim();
        let r = match s.split_once(':') {
            Some((class, n)) if class.eq_ignore_ascii_case("simple") => Replication::Simple {
                factor: factor("simple", n)?,
            },
            Some(_) => {
                let mut dcs = BTreeMap::new();
                for pair in s.split(',') {
                    let (dc, n) = pair.split_once(':').ok_or_else(bad)?;
                    let dc = dc.trim();
                    if dcs.insert(dc.to_string(), factor(dc, n)?).is_some() {
                        return Err(format!("replication {s:?} names {dc} twice"));
                    }
                }
                Replication::NetworkTopology { dcs }
            }
            None => return Err(bad()),
        };
        r.check()?;
        Ok(r)
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Simple { factor } => write!(f, "simple:{factor}"),
            Replication::NetworkTopology { dcs } => {
                let parts: Vec<String> = dcs.iter().map(|(dc, n)| format!("{dc}:{n}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Serialize for Replication {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Replication::Simple { factor } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("class", "SimpleStrategy")?;
                m.serialize_entry("factor", factor)?;
                m.end()
            }
            Replication::NetworkTopology { dcs } => {
                let mut m = s.serialize_map(Some(1 + dcs.len()))?;
                m.serialize_entry("class", "NetworkTopologyStrategy")?;
                for (dc, n) in dcs {
                    m.serialize_entry(dc, n)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Replication {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Replication;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "{ class = \"SimpleStrategy\", factor = N }, \
                     { class = \"NetworkTopologyStrategy\", <dc> = N, ... } or \"simple:N\"",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Replication, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Replication, A::Error> {
                let mut class: Option<String> = None;
                let mut factors: BTreeMap<String, u32> = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "class" {
                        class = Some(map.next_value()?);
                    } else if factors.insert(key.clone(), map.next_value()?).is_some() {
                        return Err(de::Error::custom(format!("duplicate key {key}")));
                    }
                }
                let r = match class.as_deref() {
                    Some("SimpleStrategy") => {
                        let factor = factors
                            .remove("factor")
                            .ok_or_else(|| de::Error::missing_field("factor"))?;
                        if let Some(other) = factors.keys().next() {
                            return Err(de::Error::custom(format!(
                                "SimpleStrategy takes only `factor`, not `{other}`"
                            )));
                        }
                        Replication::Simple { factor }
                    }
                    Some("NetworkTopologyStrategy") => {
                        Replication::NetworkTopology { dcs: factors }
                    }
                    Some(other) => {
                        return Err(de::Error::unknown_variant(
                            other,
                            &["SimpleStrategy", "NetworkTopologyStrategy"],
                        ))
                    }
                    None => return Err(de::Error::missing_field("class")),
                };
                r.check().map_err(de::Error::custom)?;
                Ok(r)
            }
        }
        d.deserialize_any(V)
    }
}

/// A consistency level, used for every read and write. Parses case-insensitively from the
/// CQL names (`LOCAL_QUORUM`, `quorum`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// A majority of all replicas.
    Quorum,
    /// Every replica.
    All,
    /// A majority of the replicas in the coordinator's data centre (the default).
    #[default]
    LocalQuorum,
    /// A majority in each data centre (writes; reads answer at QUORUM on Cassandra ≥ 4).
    EachQuorum,
    /// One replica in the coordinator's data centre.
    LocalOne,
}

const CONSISTENCIES: [(Consistency, &str); 8] = [
    (Consistency::One, "ONE"),
    (Consistency::Two, "TWO"),
    (Consistency::Three, "THREE"),
    (Consistency::Quorum, "QUORUM"),
    (Consistency::All, "ALL"),
    (Consistency::LocalQuorum, "LOCAL_QUORUM"),
    (Consistency::EachQuorum, "EACH_QUORUM"),
    (Consistency::LocalOne, "LOCAL_ONE"),
];

impl Consistency {
    /// The CQL name, e.g. `LOCAL_QUORUM`.
    pub fn as_str(self) -> &'static str {
        CONSISTENCIES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("LOCAL_QUORUM", |(_, n)| n)
    }

    pub(super) fn driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            Consistency::One => C::One,
            Consistency::Two => C::Two,
            Consistency::Three => C::Three,
            Consistency::Quorum => C::Quorum,
            Consistency::All => C::All,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::LocalOne => C::LocalOne,
        }
    }
}

impl FromStr for Consistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        CONSISTENCIES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map(|(c, _)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = CONSISTENCIES.iter().map(|(_, n)| *n).collect();
                format!("consistency {s:?}: expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Consistency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Consistency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_parses_from_flags() {
        assert_eq!(
            "simple:3".parse::<Replication>().unwrap(),
            Replication::Simple { factor: 3 }
        );
        let nts: Replication = "dc1:3, dc2:2".parse().unwrap();
        assert_eq!(nts.to_string(), "dc1:3,dc2:2");
        assert_eq!(
            nts.cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
        for bad in [
            "",
            "3",
            "simple:x",
            "simple:0",
            "dc1:3,dc1:2",
            "dc'1:3",
            "dc1:3,dc2",
        ] {
            assert!(bad.parse::<Replication>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn consistency_parses_case_insensitively() {
        assert_eq!(
            "local_quorum".parse::<Consistency>().unwrap(),
            Consistency::LocalQuorum
        );
        assert_eq!("ONE".parse::<Consistency>().unwrap(), Consistency::One);
        assert_eq!(
            "Each_Quorum".parse::<Consistency>().unwrap(),
            Consistency::EachQuorum
        );
        let err = "ANY".parse::<Consistency>().unwrap_err();
        assert!(err.contains("LOCAL_QUORUM"), "{err}");
    }

    #[test]
    fn config_round_trips_and_hides_the_password() {
        let cfg: CassandraConfig = serde_json::from_value(serde_json::json!({
            "nodes": ["10.0.0.1:9042"],
            "replication": {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2},
            "consistency": "quorum",
            "username": "weir",
            "password": "hunter2",
            "tls": {"ca_file": "/etc/ca.pem"},
        }))
        .unwrap();
        assert_eq!(cfg.consistency, Consistency::Quorum);
        assert_eq!(cfg.request_timeout_ms, 2000);
        assert_eq!(cfg.replication.to_string(), "dc1:3,dc2:2");
        let shown = serde_json::to_string(&cfg).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(r#""password":"***""#), "{shown}");
        assert!(shown.contains(r#""consistency":"QUORUM""#), "{shown}");
        assert!(
            shown.contains(r#""class":"NetworkTopologyStrategy","dc1":3"#),
            "{shown}"
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let simple: CassandraConfig = serde_json::from_value(
            serde_json::json!({"replication": {"class": "SimpleStrategy", "factor": 2}}),
        )
        .unwrap();
        assert_eq!(simple.replication, Replication::Simple { factor: 2 });
        for bad in [
            serde_json::json!({"replication": {"class": "SimpleStrategy", "factor": 2, "dc1": 1}}),
            serde_json::json!({"replication": {"class": "Nope", "factor": 2}}),
            serde_json::json!({"replication": {"factor": 2}}),
            serde_json::json!({"consistency": "sometimes"}),
            serde_json::json!({"unknown": 1}),
        ] {
            assert!(
                serde_json::from_value::<CassandraConfig>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn toml_shapes() {
        let cfg: CassandraConfig = toml::from_str(
            r#"
            nodes = ["a:9042", "b:9042"]
            replication = { class = "NetworkTopologyStrategy", dc1 = 3, dc2 = 2 }
            consistency = "local_one"
            local_dc = "dc1"
            username = "weir"
            password = "hunter2"
            tls = { ca_file = "ca.pem", server_name = "cassandra.internal" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.replication.to_string(), "dc1:3,dc2:2");
        assert_eq!(cfg.consistency, Consistency::LocalOne);
        let shown = toml::to_string(&cfg).unwrap();
        assert!(shown.contains(r#"password = "***""#), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let simple: CassandraConfig =
            toml::from_str(r#"replication = { class = "SimpleStrategy", factor = 3 }"#).unwrap();
        assert_eq!(simple.replication, Replication::Simple { factor: 3 });
        let flag: CassandraConfig = toml::from_str(r#"replication = "dc1:3""#).unwrap();
        assert_eq!(flag.replication.to_string(), "dc1:3");
        let defaults = toml::to_string(&CassandraConfig::default()).unwrap();
        let back: CassandraConfig = toml::from_str(&defaults).unwrap();
        assert_eq!(back, CassandraConfig::default());
    }
}
