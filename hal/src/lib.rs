//! Device access for the kiosk and gate appliance.
//!
//! One module per device family (printer, scanners, ID/IC readers, gates,
//! power inputs), each with the same shape: a trait the rest of the appliance
//! uses, a pure codec for its wire protocol, the real backend on its real
//! transport, and a simulator (feature `sim`) speaking the same bytes.
//!
//! Invariant: hal knows nothing of tickets, orders or lanes.

pub mod node;
