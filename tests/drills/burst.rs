//! Drills against the built binary on PostgreSQL: the service under a burst of webhooks.
//! Each drill is bounded in count and time.

use crate::support;
use crate::support::outage;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{TestDb, linear};

const LINEAR_SECRET: &str = "drill-linear-secret";
const BURST: usize = 10_000;
const CLIENTS: usize = 32;

fn resident_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 10,000 webhooks in a burst at a `web` process with a `worker` beside it: every one is
/// answered 202, none is lost, the intake queue drains, and the web process's memory after the
/// burst is close to what it was after the first thousand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_webhooks_in_a_burst_are_all_kept_and_handled() {
    let _outage = outage::exclusive().await;
    let t = TestDb::postgres().await;
    let port = support::free_port();
    let fakes = support::fakes::FakeProviders::start().await;
    let linear_api = fakes.linear_api_url();
    let web = linear::role(&t.url, LINEAR_SECRET, &linear_api, port, "web");
    let worker = linear::role(&t.url, LINEAR_SECRET, &linear_api, port, "worker");
    let base = format!("http://127.0.0.1:{port}");
    linear::wait_serving(port).await;

    let client = reqwest::Client::new();
    let send = |from: usize, to: usize| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let next = Arc::new(AtomicUsize::new(from));
            let mut senders = tokio::task::JoinSet::new();
            for _ in 0..CLIENTS {
                let (client, base, next) = (client.clone(), base.clone(), next.clone());
                senders.spawn(async move {
                    let mut statuses = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= to {
                            return statuses;
                        }
                        let answer = linear::signed_comment(
                            LINEAR_SECRET,
                            &format!("drill-comment-{n}"),
                            &format!("drill-{n}"),
                        )
                        .post(&client, &base)
                        .timeout(Duration::from_secs(60))
                        .send()
                        .await;
                        statuses.push(answer.map(|a| a.status().as_u16()).unwrap_or(0));
                    }
                });
            }
            let mut statuses = Vec::new();
            while let Some(done) = senders.join_next().await {
                statuses.extend(done.unwrap());
            }
            statuses
        }
    };
    let mut statuses = send(0, 1_000).await;
    let warm_kib = resident_kib(web.pid());
    statuses.extend(send(1_000, BURST).await);
    let after_kib = resident_kib(web.pid());
    eprintln!(
        "web process resident: {warm_kib} KiB after 1,000 deliveries, {after_kib} KiB after {BURST}"
    );
    assert_eq!(statuses.len(), BURST);
    let refused: Vec<&u16> = statuses.iter().filter(|s| **s != 202).collect();
    assert!(
        refused.is_empty(),
        "{} not answered 202: {:?}",
        refused.len(),
        &refused[..refused.len().min(10)]
    );

    // Every delivery is stored once and handled by intake.
    linear::wait_handled(&t.db, BURST, Duration::from_secs(600)).await;
    let all =
        t.db.deliveries(Some("linear"), None, None, 20_000)
            .await
            .unwrap();
    assert_eq!(all.len(), BURST, "one delivery each, none doubled");
    let open: Vec<_> =
        t.db.job_status_counts()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.status != "Done")
            .collect();
    assert!(open.is_empty(), "the queue drained: {open:?}");
    assert!(
        after_kib <= warm_kib + 64 * 1024,
        "the web process grew from {warm_kib} KiB after 1,000 deliveries to {after_kib} KiB after {BURST}"
    );
    drop((web, worker));
    t.drop_database().await;
}
