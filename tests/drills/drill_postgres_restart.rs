//! Drill: PostgreSQL stops and starts again under a web and a worker process (the binary).
//! Requests during the outage are answered 503 promptly, not left hanging; the processes
//! reconnect by themselves; every delivery answered 202 is handled. This binary holds only
//! this test, because it stops the server every PostgreSQL test uses.

use crate::support;
use crate::support::outage;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{TestDb, linear, wait_for};

const LINEAR_SECRET: &str = "drill-linear-secret";

/// The PostgreSQL cluster on the tests' port, as `pg_ctlcluster` names it.
fn cluster() -> (String, String) {
    let port = url::Url::parse(&support::postgres_admin_url())
        .unwrap()
        .port()
        .unwrap_or(5432)
        .to_string();
    let listed = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters (postgresql-common) is installed");
    let listed = String::from_utf8(listed.stdout).unwrap();
    listed
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(2) == Some(&port.as_str()))
        .map(|fields| (fields[0].to_string(), fields[1].to_string()))
        .unwrap_or_else(|| panic!("no PostgreSQL cluster on port {port}: {listed}"))
}

fn pg_ctl(action: &str) {
    let (version, name) = cluster();
    let status = Command::new("pg_ctlcluster")
        .args([version.as_str(), name.as_str(), action, "--", "-m", "fast"])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster {action}");
}

/// Starts PostgreSQL again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let (version, name) = cluster();
        let _ = Command::new("pg_ctlcluster")
            .args([version.as_str(), name.as_str(), "start"])
            .status();
    }
}

async fn deliver(client: &reqwest::Client, base: &str, n: usize) -> Result<u16, String> {
    linear::signed_comment(
        LINEAR_SECRET,
        &format!("restart-comment-{n}"),
        &format!("restart-{n}"),
    )
    .post(client, base)
    .timeout(Duration::from_secs(45))
    .send()
    .await
    .map(|answer| answer.status().as_u16())
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_loses_no_accepted_delivery_and_the_processes_reconnect() {
    let _outage = outage::exclusive().await;
    let t = TestDb::postgres().await;
    let port = support::free_port();
    let fakes = support::fakes::FakeProviders::start().await;
    let linear_api = fakes.linear_api_url();
    let _web = linear::role(&t.url, LINEAR_SECRET, &linear_api, port, "web");
    let _worker = linear::role(&t.url, LINEAR_SECRET, &linear_api, port, "worker");
    let url = format!("http://127.0.0.1:{port}");
    linear::wait_serving(port).await;
    let client = reqwest::Client::new();
    let mut accepted = 0;
    for n in 0..200 {
        assert_eq!(deliver(&client, &url, n).await, Ok(202));
        accepted += 1;
    }

    let restart = Restart;
    pg_ctl("stop");
    // During the outage: a prompt 503 that says so, never a hang or a 202.
    for n in 200..205 {
        let asked = Instant::now();
        let answer = deliver(&client, &url, n).await;
        eprintln!("during the outage: {answer:?} after {:?}", asked.elapsed());
        assert_eq!(answer, Ok(503), "delivery {n} during the outage");
        assert!(
            asked.elapsed() < Duration::from_secs(40),
            "delivery {n} was answered only after {:?}",
            asked.elapsed()
        );
    }
    pg_ctl("start");
    drop(restart);

    // The web process reconnects by itself: deliveries are accepted again.
    let mut n = 205;
    wait_for(
        "the web process to accept again",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = url.clone();
            let this = n;
            n += 1;
            async move { (deliver(&client, &url, this).await == Ok(202)).then_some(()) }
        },
    )
    .await;
    accepted += 1;
    for n in 1_000..1_200 {
        assert_eq!(deliver(&client, &url, n).await, Ok(202));
        accepted += 1;
    }

    // Every delivery answered 202 is handled by the worker, which reconnected too.
    linear::wait_handled(&t.db, accepted, Duration::from_secs(120)).await;
    let stored =
        t.db.deliveries(Some("linear"), None, None, 10_000)
            .await
            .unwrap()
            .len();
    assert_eq!(
        stored, accepted,
        "nothing refused was stored, nothing accepted lost"
    );
    t.drop_database().await;
}
