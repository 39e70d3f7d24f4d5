//! Linear: verifying its webhook deliveries.

mod verify;

pub use verify::verify;
