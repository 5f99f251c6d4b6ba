//! Watches the UPS (NUT or UPower, from `[power]` in gated.toml) and keeps
//! the latest state for D-Bus, the kiosk's out-of-service reasons and the
//! engineer's self-test. What the device does on battery is the fallback's.

use hal::power::PowerState;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;

/// What gated knows about its power.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PowerView {
    /// `nut HOST:PORT/UPS`, `upower`, or None when no UPS is configured.
    pub source: Option<String>,
    /// The UPS link: `connected`, `reconnecting: …`.
    pub connection: String,
    /// None until the UPS answered.
    pub state: Option<PowerState>,
}

impl PowerView {
    pub fn on_battery(&self) -> bool {
        self.state.as_ref().is_some_and(PowerState::on_battery)
    }

    /// For people: "on mains", "ON BATTERY, 80 %", "unknown: …", "no UPS configured".
    pub fn describe(&self) -> String {
        match (&self.source, &self.state) {
            (None, _) => "no UPS configured".into(),
            (Some(_), Some(s)) => s.to_string(),
            (Some(src), None) => format!("unknown ({src}: {})", self.connection),
        }
    }
}

pub fn start(config: &Config, tasks: &mut JoinSet<()>) -> watch::Receiver<PowerView> {
    let p = &config.power;
    let (source, mut dev) = match (&p.nut, p.upower) {
        (Some(nut), _) => match nut.get_ref().parse::<hal::power::nut::NutTarget>() {
            Ok(t) => (
                format!("nut {}", nut.get_ref()),
                hal::power::nut::spawn(t, std::time::Duration::from_millis(p.poll_ms.max(50))),
            ),
            // Refused by config validation already.
            Err(_) => return watch::channel(PowerView::default()).1,
        },
        (None, true) => (
            "upower".to_owned(),
            hal::power::upower::spawn(hal::power::upower::Bus::System),
        ),
        (None, false) => return watch::channel(PowerView::default()).1,
    };
    let (tx, rx) = watch::channel(PowerView {
        source: Some(source),
        connection: dev.state().to_string(),
        state: None,
    });
    tasks.spawn(async move {
        while let Some(state) = dev.next().await {
            let connection = dev.state().to_string();
            tx.send_if_modified(|v| {
                let changed = v.state.as_ref() != Some(&state) || v.connection != connection;
                if v.state.as_ref() != Some(&state) {
                    tracing::warn!("power: {state}");
                }
                v.state = Some(state);
                v.connection = connection;
                changed
            });
        }
    });
    rx
}
