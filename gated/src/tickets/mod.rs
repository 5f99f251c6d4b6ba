//! Tickets: the signed token format and (with the lane) the rules that
//! decide whether a ticket admits someone here and now.

pub mod base45;
pub mod rules;
pub mod token;
