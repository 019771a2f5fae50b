//! The state-row methods of every backend (the embedded store, and Cassandra on the node named
//! by `WEIR_TEST_CASSANDRA`): what a key write removes and keeps, reading a part back grouped
//! by key in bucket order, and dropping a scope.

mod common;

use weir_storage::{EmbeddedConfig, EmbeddedStore, StateKeyWrite, Storage};

fn write(key: &str, rows: &[(i64, &str)]) -> StateKeyWrite {
    StateKeyWrite {
        key: key.as_bytes().to_vec(),
        rows: rows
            .iter()
            .map(|(b, v)| (*b, v.as_bytes().to_vec()))
            .collect(),
        ..Default::default()
    }
}

/// A part's rows, checked to come grouped by key in bucket order, then sorted by key (the
/// backends may order the keys themselves differently).
fn read(s: &dyn Storage, scope: &str, part: u32) -> Vec<(String, i64, String)> {
    let rows: Vec<(String, i64, String)> = s
        .state_read(scope, part)
        .unwrap()
        .map(|r| {
            let (k, b, v) = r.unwrap();
            (
                String::from_utf8(k).unwrap(),
                b,
                String::from_utf8(v).unwrap(),
            )
        })
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for (i, (k, b, _)) in rows.iter().enumerate() {
        if i > 0 && rows[i - 1].0 == *k {
            assert!(rows[i - 1].1 < *b, "buckets of {k} out of order: {rows:?}");
        } else {
            assert!(
                !seen.contains(&k.as_str()),
                "rows of {k} not together: {rows:?}"
            );
            seen.push(k);
        }
    }
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
}

/// Opens the same data again (after a restart).
trait Reopen {
    fn open(&self) -> Box<dyn Storage>;
}

impl Reopen for tempfile::TempDir {
    fn open(&self) -> Box<dyn Storage> {
        Box::new(EmbeddedStore::open(self.path(), &EmbeddedConfig::default()).unwrap())
    }
}

#[cfg(feature = "cassandra")]
impl Reopen for common::Keyspace {
    fn open(&self) -> Box<dyn Storage> {
        Box::new(self.connect())
    }
}

#[test]
fn embedded_key_writes_delete_what_they_say_and_read_back_in_order() {
    key_writes_delete_what_they_say_and_read_back_in_order(&tempfile::tempdir().unwrap());
}

#[cfg(feature = "cassandra")]
#[test]
fn cassandra_key_writes_delete_what_they_say_and_read_back_in_order() {
    key_writes_delete_what_they_say_and_read_back_in_order(&common::Keyspace::new());
}

#[test]
fn embedded_many_keys_spread_and_drop() {
    many_keys_spread_and_drop(&tempfile::tempdir().unwrap());
}

#[cfg(feature = "cassandra")]
#[test]
fn cassandra_many_keys_spread_and_drop() {
    many_keys_spread_and_drop(&common::Keyspace::new());
}

/// Hundreds of keys over several parts (Cassandra spreads a part over sub-partitions): every
/// row reads back in its own part, a key written again replaces only its own rows, and a
/// dropped scope leaves nothing.
fn many_keys_spread_and_drop(b: &dyn Reopen) {
    let s = b.open();
    for part in 0..3u32 {
        let keys: Vec<StateKeyWrite> = (0..200)
            .map(|i| {
                let k = format!("[\"k{part}-{i}\"]");
                write(&k, &[(i64::MIN, "s"), (1, "one"), (2, "two")])
            })
            .collect();
        s.state_write("big/1", part, &keys).unwrap();
    }
    for part in 0..3u32 {
        let rows = read(&*s, "big/1", part);
        assert_eq!(rows.len(), 600);
        assert!(rows
            .iter()
            .all(|r| r.0.starts_with(&format!("[\"k{part}-"))));
    }
    let mut w = write("[\"k1-7\"]", &[(3, "three")]);
    w.delete_all = true;
    s.state_write("big/1", 1, &[w]).unwrap();
    let rows = read(&*s, "big/1", 1);
    assert_eq!(rows.len(), 598);
    let k7: Vec<_> = rows.iter().filter(|r| r.0 == "[\"k1-7\"]").collect();
    assert_eq!(
        k7,
        vec![&("[\"k1-7\"]".to_string(), 3, "three".to_string())]
    );
    s.state_drop("big/1", 3).unwrap();
    for part in 0..3u32 {
        assert!(read(&*s, "big/1", part).is_empty());
    }
}

fn key_writes_delete_what_they_say_and_read_back_in_order(b: &dyn Reopen) {
    let s = b.open();
    s.state_write(
        "q/a/1",
        0,
        &[
            write(
                "[\"b\"]",
                &[(i64::MIN, "sb"), (-5, "b-5"), (10, "b10"), (20, "b20")],
            ),
            write("[\"a\"]", &[(i64::MIN, "sa"), (3, "a3")]),
            write("", &[(0, "mark")]),
        ],
    )
    .unwrap();
    s.state_write("q/a/1", 1, &[write("[\"c\"]", &[(i64::MIN, "sc")])])
        .unwrap();
    s.state_write(
        "q/a/10",
        0,
        &[write("[\"z\"]", &[(i64::MIN, "other scope")])],
    )
    .unwrap();
    assert_eq!(
        read(&*s, "q/a/1", 0),
        vec![
            ("".into(), 0, "mark".into()),
            ("[\"a\"]".into(), i64::MIN, "sa".into()),
            ("[\"a\"]".into(), 3, "a3".into()),
            ("[\"b\"]".into(), i64::MIN, "sb".into()),
            ("[\"b\"]".into(), -5, "b-5".into()),
            ("[\"b\"]".into(), 10, "b10".into()),
            ("[\"b\"]".into(), 20, "b20".into()),
        ]
    );
    // Expired buckets through 10 go, the sentinel stays (and is rewritten).
    let mut w = write("[\"b\"]", &[(i64::MIN, "sb2"), (20, "b20'")]);
    w.delete_through = Some(10);
    s.state_write("q/a/1", 0, &[w]).unwrap();
    let rows_b: Vec<_> = read(&*s, "q/a/1", 0)
        .into_iter()
        .filter(|r| r.0 == "[\"b\"]")
        .collect();
    assert_eq!(
        rows_b,
        vec![
            ("[\"b\"]".into(), i64::MIN, "sb2".into()),
            ("[\"b\"]".into(), 20, "b20'".into()),
        ]
    );
    // A key removed and written again in one write keeps only the new rows.
    let mut w = write("[\"a\"]", &[(i64::MIN, "sa2"), (7, "a7")]);
    w.delete_all = true;
    s.state_write(
        "q/a/1",
        0,
        &[w, {
            let mut gone = write("[\"b\"]", &[]);
            gone.delete_all = true;
            gone
        }],
    )
    .unwrap();
    assert_eq!(
        read(&*s, "q/a/1", 0),
        vec![
            ("".into(), 0, "mark".into()),
            ("[\"a\"]".into(), i64::MIN, "sa2".into()),
            ("[\"a\"]".into(), 7, "a7".into()),
        ]
    );
    // Dropping a scope leaves the others (even one whose name it prefixes).
    s.state_drop("q/a/1", 2).unwrap();
    assert!(read(&*s, "q/a/1", 0).is_empty());
    assert!(read(&*s, "q/a/1", 1).is_empty());
    assert_eq!(read(&*s, "q/a/10", 0).len(), 1);
    // Rows survive a reopen once synced.
    s.sync().unwrap();
    drop(s);
    let s = b.open();
    assert_eq!(
        read(&*s, "q/a/10", 0),
        vec![("[\"z\"]".into(), i64::MIN, "other scope".into())]
    );
}
