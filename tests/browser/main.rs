//! The dashboard in a real headless Chromium: one test binary, apart from the others because
//! it needs Chromium and chromedriver (`tests/support/browser.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod conversation;
mod dashboard;
mod layout;
mod newcomer;
