//! The state-row methods of the embedded store: what a key write removes and keeps, reading a
//! part back grouped by key in bucket order, and dropping a scope.

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

fn read(s: &dyn Storage, scope: &str, part: u32) -> Vec<(String, i64, String)> {
    s.state_read(scope, part)
        .unwrap()
        .map(|r| {
            let (k, b, v) = r.unwrap();
            (
                String::from_utf8(k).unwrap(),
                b,
                String::from_utf8(v).unwrap(),
            )
        })
        .collect()
}

#[test]
fn key_writes_delete_what_they_say_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), &EmbeddedConfig::default()).unwrap();
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
        read(&s, "q/a/1", 0),
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
    let b: Vec<_> = read(&s, "q/a/1", 0)
        .into_iter()
        .filter(|r| r.0 == "[\"b\"]")
        .collect();
    assert_eq!(
        b,
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
        read(&s, "q/a/1", 0),
        vec![
            ("".into(), 0, "mark".into()),
            ("[\"a\"]".into(), i64::MIN, "sa2".into()),
            ("[\"a\"]".into(), 7, "a7".into()),
        ]
    );
    // Dropping a scope leaves the others (even one whose name it prefixes).
    s.state_drop("q/a/1", 2).unwrap();
    assert!(read(&s, "q/a/1", 0).is_empty());
    assert!(read(&s, "q/a/1", 1).is_empty());
    assert_eq!(read(&s, "q/a/10", 0).len(), 1);
    // Rows survive a reopen once synced.
    s.sync().unwrap();
    drop(s);
    let s = EmbeddedStore::open(dir.path(), &EmbeddedConfig::default()).unwrap();
    assert_eq!(
        read(&s, "q/a/10", 0),
        vec![("[\"z\"]".into(), i64::MIN, "other scope".into())]
    );
}
