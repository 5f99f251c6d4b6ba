//! Tickets: the signed token format, the product rules, and `admission`,
//! the one place that decides whether a ticket admits someone here and now.

pub mod admission;
pub mod base45;
pub mod rules;
pub mod token;
