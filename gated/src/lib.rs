//! gated, the appliance's device daemon, and the library gatectl shares with it.
//!
//! gated is the only process that touches devices, the database and the
//! network; the kiosk UI and gatectl reach it over D-Bus.

pub mod central;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod health;
pub mod kiosk;
pub mod kiosk_role;
pub mod lane;
pub mod lanes;
pub mod logging;
pub mod modes;
pub mod occupancy;
pub mod peers;

pub mod power;
pub mod reads;
pub mod service_pin;
pub mod setup;
pub mod store;
pub mod systemd;
pub mod tickets;
pub mod update;
pub mod voice;
