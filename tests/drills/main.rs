//! The built `openhands` binary started as processes, as a user or an operator runs it, and
//! drills that break what it stands on: PostgreSQL and the Docker engine restarted under load,
//! a burst of webhooks, workers killed mid-run.
//!
//! Every test here holds the lock of `support::outage`: the drills that stop PostgreSQL or
//! the Docker engine, or load the machine to measure it, hold it exclusively and so run alone;
//! the others share it and run beside each other. The last test below checks that no test of
//! this binary goes without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod agent_crash;
mod burst;
mod cli;
mod deploy;
mod doctor;
mod drill_docker_restart;
mod drill_postgres_restart;
mod first_start;
mod github_app;
mod multi_process;

/// Each test function of this binary's modules takes the outage lock first thing, so that no
/// test can run while PostgreSQL or the Docker engine is down.
#[test]
fn every_test_holds_the_outage_lock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drills");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "main.rs" {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = source.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            if !(line.starts_with("#[test]") || line.starts_with("#[tokio::test")) {
                continue;
            }
            let signature = lines[i + 1].trim();
            let first = lines[i + 2].trim();
            assert!(
                first.starts_with("let _outage = outage::"),
                "{}: `{signature}` must start with `let _outage = outage::shared().await;` \
                 (or `shared_blocking()`, or `exclusive().await` for a test that stops a \
                 service the others use), not `{first}`",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} tests found under {}",
        dir.display()
    );
}
