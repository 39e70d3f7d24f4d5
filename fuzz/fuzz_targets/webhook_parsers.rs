//! Feeds arbitrary deliveries to every provider's webhook parser, and their bodies to the
//! mention matcher, to the reader of repository names and to Slack's interactivity parser:
//! each must answer (a request, an ignored delivery or an error) for any input, and never
//! panic.
//!
//! The input is laid out so that a real payload makes a good seed: one byte for the provider,
//! then four optional headers of mostly fixed size, then the body as all the remaining bytes.
//! `scripts/fuzz` writes the JSON fixtures of `tests/fixtures/` in this layout (with the
//! headers each provider sends) as the starting corpus: keep the two in step.

#![no_main]

use std::fmt;

use arbitrary::Arbitrary;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use openhands::integrations::mention::mentions;
use openhands::integrations::parse;
use openhands::intake::repository::{Hosts, named_in};
use openhands::integrations::request::{ParseSettings, Provider};

/// The headers the parsers read.
const HEADER_NAMES: &[&str] = &[
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Atlassian-Webhook-Identifier",
    "Linear-Delivery",
    "Content-Type",
];

/// Real values of those headers: event names, a delivery id and content types.
const HEADER_VALUES: &[&str] = &[
    "ping",
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
    "Issue Hook",
    "Confidential Issue Hook",
    "Merge Request Hook",
    "Note Hook",
    "Confidential Note Hook",
    "Pipeline Hook",
    "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "application/json",
    "application/x-www-form-urlencoded",
    "",
    " ",
];

#[derive(Arbitrary)]
struct Input<'a> {
    /// Indexes `Provider::ALL`.
    provider: u8,
    headers: [Option<Header<'a>>; 4],
    /// All the bytes after the headers, as they are.
    body: &'a [u8],
}

/// One header. Its name is `HEADER_NAMES[name]` (modulo its length), or `other_name` when
/// that is given and `name` ≥ 0x80; its value is `HEADER_VALUES[value]`, or `other_value`
/// when that is given.
#[derive(Arbitrary)]
struct Header<'a> {
    name: u8,
    value: u8,
    other_name: Option<&'a str>,
    other_value: Option<&'a [u8]>,
}

impl Header<'_> {
    /// The header, or `None` where its name or value is not valid in HTTP.
    fn build(&self) -> Option<(HeaderName, HeaderValue)> {
        let name = match &self.other_name {
            Some(other) if self.name >= 0x80 => HeaderName::from_bytes(other.as_bytes()),
            _ => HeaderName::from_bytes(pick(HEADER_NAMES, self.name).as_bytes()),
        };
        let value = match &self.other_value {
            Some(other) => HeaderValue::from_bytes(other),
            None => HeaderValue::from_bytes(pick(HEADER_VALUES, self.value).as_bytes()),
        };
        Some((name.ok()?, value.ok()?))
    }
}

fn pick(list: &[&'static str], index: u8) -> &'static str {
    list[usize::from(index) % list.len()]
}

impl Input<'_> {
    fn provider(&self) -> Provider {
        Provider::ALL[usize::from(self.provider) % Provider::ALL.len()]
    }

    fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers.iter().flatten().filter_map(Header::build) {
            headers.append(name, value);
        }
        headers
    }
}

/// What the parser is given, compactly: cargo-fuzz prints it for a crashing input.
impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("provider", &self.provider())
            .field("headers", &self.header_map())
            .field("body", &format_args!("b\"{}\"", self.body.escape_ascii()))
            .finish()
    }
}

fuzz_target!(|input: Input<'_>| {
    let headers = input.header_map();
    let settings = ParseSettings::default();
    let _ = parse(input.provider(), &headers, input.body, &settings);
    let text = String::from_utf8_lossy(input.body);
    let _ = mentions(&text, "@openhands");
    let _ = named_in(&text, &Hosts::of("api.github.com", "gitlab.com"));
    let _ = openhands::integrations::slack::parse_interaction(input.body);
});
