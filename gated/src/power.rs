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
    let (source, dev) = if let Some(nut) = &p.nut {
        match nut.get_ref().parse::<hal::power::nut::NutTarget>() {
            Ok(t) => (
                format!("nut {}", nut.get_ref()),
                hal::power::nut::spawn(t, std::time::Duration::from_millis(p.poll_ms.max(50))),
            ),
            // Refused by config validation already.
            Err(_) => return watch::channel(PowerView::default()).1,
        }
    } else if p.upower {
        (
            "upower".to_owned(),
            hal::power::upower::spawn(hal::power::upower::Bus::System),
        )
    } else if let Some(spec) = &p.gpio {
        let Ok((chip, line)) = crate::config::gpio_line(spec.get_ref()) else {
            return watch::channel(PowerView::default()).1;
        };
        let source = format!("gpio {}", spec.get_ref());
        match hal::gpio::cdev::CdevInput::open(&chip, line, "gated-power-fail") {
            Ok(input) => (
                source,
                hal::power::spawn_gpio(
                    "power-fail line",
                    input,
                    p.gpio_active_low,
                    std::time::Duration::from_millis(50),
                ),
            ),
            Err(e) => {
                tracing::error!("power-fail line {}: {e}", spec.get_ref());
                return watch::channel(PowerView {
                    source: Some(source),
                    connection: format!("failed: {e}"),
                    state: None,
                })
                .1;
            }
        }
    } else {
        return watch::channel(PowerView::default()).1;
    };
    follow(source, dev, tasks)
}

/// Keeps the view of one UPS source (`source` names it for people).
pub fn follow(
    source: String,
    mut dev: hal::Device<PowerState>,
    tasks: &mut JoinSet<()>,
) -> watch::Receiver<PowerView> {
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
                    if state.on_battery() {
                        tracing::warn!("power: {state}");
                    } else {
                        tracing::info!("power: {state}");
                    }
                }
                v.state = Some(state);
                v.connection = connection;
                changed
            });
        }
    });
    rx
}
