//! The Rust client (`weir-client`) against a real `weir serve`: every kind of route, errors
//! with positions, exact decisions under concurrency, retries while the server starts.

mod common;

use std::time::Duration;

use common::{free_port, Server};
use serde_json::json;
use weir_client::{Client, ClientConfig, ClientError, EventFilter, ResultParams};

/// A fixed event time on a whole minute (unix ms).
const T0: i64 = 1_700_000_040_000;

#[tokio::test]
async fn statements_events_results_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let weir = Client::new(&server.url).unwrap();
    assert!(weir.health().await.unwrap());

    let results = weir
        .apply(
            "CREATE QUERY per_min AS SELECT count(*) AS n, sum(amount) AS total FROM neworder \
             GROUP BY seller, timeseries(time, 1min)",
        )
        .await
        .unwrap();
    assert_eq!(results[0]["name"], "per_min");
    let err = weir
        .apply(
            "CREATE QUERY ok AS SELECT count(*) FROM a;\nCREATE QUERY bad AS SELECT count(* FROM a",
        )
        .await
        .unwrap_err();
    match &err {
        ClientError::Api {
            status,
            line,
            column,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(*line, Some(2));
            assert!(column.is_some());
        }
        other => panic!("expected an API error, got {other}"),
    }
    assert_eq!(
        weir.queries().await.unwrap().len(),
        1,
        "an error applies nothing"
    );

    let events: Vec<_> = (0..120)
        .map(|i| json!({"type": "neworder", "seller": format!("s{}", i % 2), "amount": i, "ts": T0 + i * 1000}))
        .collect();
    let accepted = weir.add_events(&events, true).await.unwrap();
    assert_eq!(accepted.accepted, 120);
    assert_eq!(accepted.ids.len(), 120);

    let rows = weir
        .result(
            "per_min",
            &ResultParams::range(T0, T0 + 120_000).key("seller", "s1"),
        )
        .await
        .unwrap()
        .rows;
    let mut expect = std::collections::BTreeMap::new();
    for i in (1..120).step_by(2) {
        let b = T0 + (i * 1000) / 60_000 * 60_000;
        let e = expect.entry(b).or_insert((0i64, 0i64));
        e.0 += 1;
        e.1 += i;
    }
    let got: std::collections::BTreeMap<i64, (i64, i64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.key["seller"], "s1");
            (
                r.bucket_start.unwrap(),
                (
                    r.values["n"].as_i64().unwrap(),
                    r.values["total"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, expect);

    let page = weir
        .events(&EventFilter {
            event_types: vec!["neworder".into()],
            limit: Some(10),
            page: Some(2),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page["total"], 120);
    assert_eq!(page["events"].as_array().unwrap().len(), 10);
    let missing = weir.query("nope").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert!(weir
        .metrics()
        .await
        .unwrap()
        .contains("weir_events_accepted_total"));
}

#[tokio::test]
async fn add_and_check_admits_exactly_the_limit_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let weir = Client::new(&server.url).unwrap();
    weir.apply(
        "CREATE RULE hundred AS SELECT count(*) AS n FROM neworder \
         GROUP BY seller, timeseries(time, 1s, 1h) DENY WHEN n > 100",
    )
    .await
    .unwrap();
    let e = json!({"type": "neworder", "seller": "usedcardealer"});
    assert!(weir.check(&e).await.unwrap().allowed());
    let calls = (0..300).map(|_| {
        let (weir, e) = (weir.clone(), e.clone());
        tokio::spawn(async move { weir.add_and_check(&e).await.unwrap().allowed() })
    });
    let mut allowed = 0;
    for c in calls {
        allowed += c.await.unwrap() as usize;
    }
    assert_eq!(allowed, 100);
    // check decides without the event: 100 counted, `n > 100` is false, so it still allows;
    // add_and_check decides with it.
    let d = weir.check(&e).await.unwrap();
    assert!(d.allowed());
    assert_eq!(d.rules[0].value, json!(100));
    let d = weir.add_and_check(&e).await.unwrap();
    assert!(!d.allowed());
    assert_eq!(d.rules[0].rule, "hundred");
    assert_eq!(d.rules[0].threshold, Some(100.0));
    let batch = weir
        .add_and_check_many(&vec![json!({"type": "neworder", "seller": "y"}); 3])
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|d| d.allowed()));
}

#[tokio::test]
async fn connection_failures_are_retried_until_the_server_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let weir = Client::with_config(
        &format!("http://127.0.0.1:{port}"),
        ClientConfig {
            retries: 10,
            backoff: Duration::from_millis(50),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Server::start_port(&path, port).await
    });
    let accepted = weir
        .add_event(&json!({"type": "click"}), true)
        .await
        .unwrap();
    assert_eq!(accepted.accepted, 1);
    let _server = starter.await.unwrap();

    let nobody = Client::with_config(
        &format!("http://127.0.0.1:{}", free_port()),
        ClientConfig {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    match nobody.health().await {
        Err(ClientError::Transport { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected a transport error, got {other:?}"),
    }
}
