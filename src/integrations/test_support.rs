//! What the webhook parsers' unit tests share: the fixtures of `tests/fixtures/`, what a
//! delivery is expected to parse into (a delivery of a given id, a request, ignored with a
//! reason, an error), and fixtures read and edited as JSON.

use serde_json::Value;

use super::request::{Inbound, ParseError, Parsed, Request};

/// The bytes of `tests/fixtures/$path`, built into the test binary.
macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $path
        ))
    };
}
pub(crate) use fixture;

/// The event name and parsed content of a delivery with id `id`; anything else fails the test.
pub(crate) fn delivery(parsed: Result<Inbound, ParseError>, id: &str) -> (String, Parsed) {
    match parsed {
        Ok(Inbound::Delivery {
            id: delivered,
            event,
            parsed,
        }) => {
            assert_eq!(delivered, id);
            (event, parsed)
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// What a delivery of any id parsed into; anything but a delivery fails the test.
pub(crate) fn parsed(parsed: Result<Inbound, ParseError>) -> Parsed {
    match parsed {
        Ok(Inbound::Delivery { parsed, .. }) => parsed,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// The request a delivery makes; anything else fails the test.
pub(crate) fn request(parsed: Parsed) -> Request {
    match parsed {
        Parsed::Request(request) => *request,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// Why a delivery is ignored; anything else fails the test.
pub(crate) fn ignored(parsed: Parsed) -> String {
    match parsed {
        Parsed::Ignored(reason) => reason,
        other => panic!("expected to be ignored, got {other:?}"),
    }
}

/// The message of a parse error; anything else fails the test.
pub(crate) fn error(parsed: Result<Inbound, ParseError>) -> String {
    match parsed {
        Err(ParseError(message)) => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

pub(crate) fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

pub(crate) fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The fixture with `change` applied to its JSON.
pub(crate) fn edited(fixture: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value = json_of(fixture);
    change(&mut value);
    to_bytes(&value)
}

/// `body` with the default mention handle in a field of its own, when it is a JSON object: the
/// same delivery, but one that could ask for something.
pub(crate) fn asking(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut object)) => {
            object.insert("extra".into(), Value::from("@openhands please"));
            to_bytes(&Value::Object(object))
        }
        _ => body.to_vec(),
    }
}

/// A delivery that does not fit its parser: refused when it could ask (checked by adding a
/// mention), and otherwise refused or ignored as asking for nothing.
pub(crate) fn assert_unfit(parse: impl Fn(&[u8]) -> Result<Inbound, ParseError>, body: &[u8]) {
    let shown = String::from_utf8_lossy(body);
    let asked = parse(&asking(body));
    assert!(
        matches!(&asked, Err(e) if !e.0.is_empty()),
        "with a mention, {shown}: {asked:?}"
    );
    match parse(body) {
        Err(e) => assert!(!e.0.is_empty(), "{shown}"),
        Ok(Inbound::Delivery {
            parsed: Parsed::Ignored(reason),
            ..
        }) => assert!(reason.contains("asks for nothing"), "{shown}: {reason}"),
        other => panic!("{shown}: {other:?}"),
    }
}
