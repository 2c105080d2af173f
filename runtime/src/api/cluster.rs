//! `GET /cluster` (a wasmfc extension): the nodes sharing this server's
//! store, as the last heartbeats describe them. On the embedded store the
//! server is a cluster of one.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::SharedState;
use crate::util::iso_ms;

pub async fn nodes(State(app): State<SharedState>) -> Json<Value> {
    let me = app.cluster.node_id();
    let nodes: Vec<Value> = app
        .cluster
        .live_nodes()
        .iter()
        .map(|n| {
            let here = n.node_id == me;
            // This node's figures as they are now, not as of its last
            // heartbeat (on one node there are no heartbeats).
            let (tasks, instances, heartbeat) = if here {
                let beat = app.cluster.last_heartbeat_ms();
                let beat = if beat == 0 { crate::util::now_ms() } else { beat };
                (app.scheduler.in_flight() as i64, app.pool.live_count() as i64, beat)
            } else {
                (n.tasks_running, n.instances, n.heartbeat_ms)
            };
            json!({
                "nodeId": n.node_id,
                "address": n.address,
                "startedTime": iso_ms(n.started_ms),
                "lastHeartbeatTime": iso_ms(heartbeat),
                "tasksRunning": tasks,
                "instances": instances,
                "self": here,
            })
        })
        .collect();
    Json(json!({
        "nodeId": me,
        "store": app.scheduler.store().kind(),
        "leaseSeconds": app.cluster.lease().as_secs(),
        "nodes": nodes,
    }))
}
