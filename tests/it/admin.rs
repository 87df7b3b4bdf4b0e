//! /health, /ready, /status and /metrics.

use serde_json::json;

use crate::support::client::Http;
use crate::support::fake;
use crate::support::gate::{test_config, Gate};

#[tokio::test]
async fn status_and_metrics_describe_the_cluster() {
    let fakes = fake::cluster(&[100, 95]).await;
    let gate = Gate::start(test_config(&fake::urls(&fakes))).await;
    let http = Http::default();
    assert_eq!(http.get(&format!("{}/health", gate.url)).await.status, 200);
    let s = gate.wait_served(100).await;
    assert_eq!(s["nodes"][0]["state"], "in_sync");
    assert_eq!(s["nodes"][1]["state"], "lagging");
    assert_eq!(s["nodes"][1]["lag"], 5);
    assert_eq!(s["nodes"][0]["url"], format!("{}/", fakes[0].url));
    assert_eq!(http.get(&format!("{}/ready", gate.url)).await.status, 200);

    http.result(&gate.url, "klay_gasPrice", json!([])).await;
    http.rpc(&gate.url, "debug_traceTransaction", json!([])).await;
    http.rpc(&gate.url, "klay_nope", json!([])).await;
    let m = http.get(&format!("{}/metrics", gate.url)).await;
    assert!(m.content_type.starts_with("text/plain"));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    for needle in [
        r#"kengate_served_head{network="klaytn"} 100"#,
        r#"kengate_requests_total{network="klaytn",method="klay_gasPrice",outcome="ok"} 1"#,
        r#"kengate_requests_total{network="klaytn",method="denied",outcome="error"} 1"#,
        r#"kengate_requests_total{network="klaytn",method="unknown",outcome="error"} 1"#,
        "kengate_request_duration_seconds_bucket",
        r#"kengate_served_head_update_seconds_count{network="klaytn"} 1"#,
        "kengate_served_head_trail_seconds_bucket",
        &format!(r#"kengate_node_head{{network="klaytn",node="{}"}} 95"#, fakes[1].url),
        &format!(
            r#"kengate_node_lag_blocks{{network="klaytn",node="{}"}} 5"#,
            fakes[1].url
        ),
        &format!(r#"kengate_node_in_sync{{network="klaytn",node="{}"}} 0"#, fakes[1].url),
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}
