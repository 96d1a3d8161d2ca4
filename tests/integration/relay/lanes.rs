//! Lanes: a change reaches every outbound mapping's queues.

use std::time::Duration;

use idm_sync::outbound::message::ChangeEvent;
use idm_sync::outbound::topology::Topology;

use super::{backlog, drain_lane, settings, spawn_relay, wait_until};
use crate::helpers::{TestApp, TestTopology, amqp_url};

/// The events of lane `lane`, with the partition each came from.
async fn events(topology: &Topology, lane: &str) -> Vec<(u16, ChangeEvent)> {
    drain_lane(topology, lane)
        .await
        .into_iter()
        .flat_map(|(p, messages)| messages.into_iter().map(move |(e, _)| (p, e)))
        .collect()
}

#[tokio::test]
async fn a_change_reaches_every_lane_on_its_partition() {
    let app = TestApp::spawn().await;
    let topology = TestTopology::with_lanes(4, ["org-a", "org-b"]);
    let (stop, _) = spawn_relay(app.db.pool.clone(), settings(amqp_url(), &topology));
    let user = app.create_user("everywhere").await;
    let id = user["_id"].as_str().unwrap();
    wait_until(
        "the change published",
        Duration::from_secs(20),
        async || backlog(&app).await == 0,
    )
    .await;
    drop(stop);
    let partition = topology.partition_for(id);
    for lane in ["org-a", "org-b"] {
        let got = events(&topology, lane).await;
        assert_eq!(got.len(), 1, "{lane}: {got:?}");
        let (p, event) = &got[0];
        assert_eq!((*p, event.object_id.as_str()), (partition, id), "{lane}");
        assert_eq!(event.operation, "create");
    }
}
