//! The load generator's client against the real server: past a tenant's
//! rate it is refused, waits as told and retries, until every item is
//! acknowledged; and what it acknowledged is stored, once.

use sightline_testkit as common;

use std::sync::atomic::Ordering;

use sightline_loadgen::send::{Client, Protocol, Tally};
use sightline_loadgen::{Generator, Signal};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_requests_are_retried_until_all_are_acknowledged() {
    let s = common::start_rate_limited(3000, 3000).await;
    for (protocol, endpoint) in
        [(Protocol::Grpc, s.grpc_url()), (Protocol::Http, format!("http://{}", s.server.http_addr))]
    {
        let tenant = format!("{protocol:?}").to_lowercase();
        let client = Client::new(protocol, &endpoint, Some(tenant.clone())).expect("client");
        let tally = std::sync::Arc::new(Tally::default());
        let mut generator = Generator::new(Signal::Logs, 7, 1000);
        let mut sending = tokio::task::JoinSet::new();
        for i in 0..8 {
            let (client, tally, payload) =
                (client.clone(), tally.clone(), generator.payload(1_700_000_000_000_000_000 + i));
            sending.spawn(async move { client.send(&payload, &tally, None).await });
        }
        sending.join_all().await;

        assert_eq!(tally.items.load(Ordering::Relaxed), 8000);
        assert_eq!(tally.acknowledged.load(Ordering::Relaxed), 8000, "{protocol:?}: every line acknowledged");
        assert_eq!(tally.failed.load(Ordering::Relaxed), 0);
        assert!(tally.refusals.load(Ordering::Relaxed) > 0, "{protocol:?}: the rate limit refused some first");

        let stored = common::eventually("lines searchable", || {
            let url = s.api_url("/api/stats");
            let tenant = tenant.clone();
            async move {
                let stats = common::get_json(&url, &[], Some(&tenant)).await?;
                Some(stats["logRecords"].as_u64()?).filter(|&n| n == 8000)
            }
        })
        .await;
        assert_eq!(stored, 8000, "stored once");
    }
}
