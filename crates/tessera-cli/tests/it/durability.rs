//! `kill -9` while the server acknowledges writes: every acknowledged token survives and the
//! audit chain still verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_client::api::CreateToken;
use tessera_client::Client;

use crate::harness::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    s.ok(&["env", "create", "staging"]);
    s.ok(&["client", "create", "svc", "--scopes", "staging=a"]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let client = Client::new(&s.url, Some(s.root.clone())).unwrap();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let req = CreateToken { env: "staging".into(), client: "svc".into(), ..Default::default() };
            // Bounded: stops at the first failure (the server is gone) or after 100k writes.
            for _ in 0..100_000 {
                match client.create_token(&req).await {
                    Ok(t) => acked.lock().unwrap().push(t.info.id),
                    Err(_) => break,
                }
            }
        }));
    }
    // Let writes flow, then kill while they are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300, "only {} writes before the deadline", acked.len());

    let s = Server::start(dir.path());
    let listed = s.json(&["token", "list", "--env", "staging"]);
    let stored: std::collections::HashSet<&str> =
        listed.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(id.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged tokens lost after kill -9: {lost:?}", lost.len());
    let verify = s.json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_u64().unwrap() >= acked.len() as u64 + 6);
}
