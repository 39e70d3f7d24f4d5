//! The production layout in `deploy/` stays true: every variable its environment files set is
//! one the service reads, the units start roles that exist with the files that are shipped,
//! and the example web and worker configurations start (with a local database and the test
//! GitHub App key in place of the production ones).

use crate::support;
use crate::support::outage;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use support::{ChildGuard, wait_for};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// `NAME=value` lines of an environment file, commented-out examples included.
fn variables(file: &str) -> BTreeMap<String, (String, bool)> {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join(file)).unwrap();
    text.lines()
        .filter_map(|line| {
            let (commented, line) = match line.strip_prefix('#') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, value) = line.split_once('=')?;
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| (name.to_string(), (value.to_string(), commented)))
        })
        .collect()
}

/// Every `env = "NAME"` the configuration declares.
fn declared_variables() -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("env = \"").skip(1) {
                    names.push(part.split('"').next().unwrap().to_string());
                }
            }
        }
    }
    names
}

const ENV_FILES: [&str; 4] = ["common.env", "web.env", "worker.env", "runtime-api.env"];

#[test]
fn every_variable_the_layout_sets_is_one_the_service_reads() {
    let _outage = outage::shared_blocking();
    let declared = declared_variables();
    assert!(
        declared.contains(&"DATABASE_URL".to_string()),
        "{declared:?}"
    );
    for file in ENV_FILES {
        let set = variables(file);
        assert!(!set.is_empty(), "{file} sets nothing");
        for name in set.keys() {
            assert!(
                declared.contains(name),
                "{file} sets {name}, which nothing reads"
            );
        }
    }
}

#[test]
fn the_units_start_existing_roles_with_the_shipped_files() {
    let _outage = outage::shared_blocking();
    for (unit, role, files) in [
        (
            "systemd/openhands-web@.service",
            "web",
            &["common.env", "web.env"][..],
        ),
        (
            "systemd/openhands-worker@.service",
            "worker",
            &["common.env", "worker.env"][..],
        ),
        (
            "systemd/openhands-runtime-api.service",
            "runtime-api",
            &["runtime-api.env"][..],
        ),
    ] {
        let text = std::fs::read_to_string(Path::new(DEPLOY).join(unit)).unwrap();
        assert!(
            text.contains(&format!("ExecStart=/usr/local/bin/openhands {role}\n")),
            "{unit}"
        );
        for file in files {
            assert!(
                text.contains(&format!("EnvironmentFile=/etc/openhands/{file}")),
                "{unit} reads {file}"
            );
        }
        let help = std::process::Command::new(support::binary())
            .args([role, "--help"])
            .output()
            .unwrap();
        assert!(help.status.success(), "`openhands {role}` exists");
    }
}

/// The example's values for one role, made runnable here.
fn runnable(files: &[&str], database_url: &str) -> Vec<(String, String)> {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-app/private-key.pem"
    );
    let mut values = BTreeMap::new();
    for file in files {
        for (name, (value, commented)) in variables(file) {
            if !commented {
                values.insert(name, value);
            }
        }
    }
    values.insert("DATABASE_URL".into(), database_url.into());
    values.insert("GITHUB_APP_PRIVATE_KEY".into(), key.into());
    values.insert("OPENHANDS_SECRET_KEY".into(), "x".repeat(40));
    values.insert("HOST".into(), "127.0.0.1".into());
    values.into_iter().collect()
}

#[tokio::test]
async fn the_example_web_and_worker_configurations_start() {
    let _outage = outage::shared().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let port = support::free_port();
    let mut web = support::openhands(&url);
    web.envs(runnable(&["common.env", "web.env"], &url))
        .env("PORT", port.to_string())
        .arg("web");
    let _web = ChildGuard::spawn(&mut web);
    let info: serde_json::Value = wait_for(
        "the example web role to answer",
        Duration::from_secs(30),
        || async move {
            let answer = reqwest::get(format!("http://127.0.0.1:{port}/server_info"))
                .await
                .ok()?;
            answer.json().await.ok()
        },
    )
    .await;
    assert_eq!(info["providers"], serde_json::json!(["github"]));
    assert_eq!(info["llm_configured"], true);

    // The worker checks its settings before it opens the database: "database ready" in its
    // log means they held together.
    let log = dir.path().join("worker.log");
    let mut worker = support::openhands(&url);
    worker
        .envs(runnable(&["common.env", "worker.env"], &url))
        .env("SANDBOX_OWNER", "deploy-test")
        .env("SANDBOX_WARM_POOL", "0")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("worker.err")).unwrap())
        .arg("worker");
    let worker = std::sync::Mutex::new(ChildGuard::spawn(&mut worker));
    let log_text = || {
        std::fs::read_to_string(&log).unwrap_or_default()
            + &std::fs::read_to_string(dir.path().join("worker.err")).unwrap_or_default()
    };
    wait_for(
        "the example worker to open the database",
        Duration::from_secs(30),
        || async {
            let exited = worker.lock().unwrap().0.try_wait().unwrap();
            if let Some(status) = exited {
                panic!(
                    "the example worker configuration is refused ({status}):\n{}",
                    log_text()
                );
            }
            log_text().contains("database ready").then_some(())
        },
    )
    .await;
    let mut worker = worker.into_inner().unwrap();
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());
}
