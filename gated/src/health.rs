//! Health at a glance: one summary of what works and what does not, green,
//! amber or red per subsystem (the central link, the clock, each attached
//! device, the data partition, the UPS), each line not green with what to
//! check. `gatectl status`, the kiosk's service menu, a lane display asked by
//! an engineer's service code and the heartbeat all show this one summary.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::central::api::{HealthItem, HealthReport};
use crate::central::sync::{Mode as LinkMode, SyncStatus};

/// Offline this long turns the central link from amber to red: tickets
/// sold meanwhile are not known at the lanes.
pub const OFFLINE_RED_MS: i64 = 10 * 60_000;
/// Clock skew beyond this is amber (the threshold the link reports), and
/// beyond `SKEW_RED_MS` red: validity windows and time slots go by the clock.
pub const SKEW_RED_MS: i64 = 10 * 60_000;
/// Free space of the data partition below these is amber, then red.
pub const DISK_AMBER_PERCENT: f64 = 15.0;
pub const DISK_RED_PERCENT: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Green,
    Amber,
    Red,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Green => "green",
            Level::Amber => "amber",
            Level::Red => "red",
        }
    }
}

/// Where the summary's facts come from; one per gated, shared.
#[derive(Debug, Clone)]
pub struct Sources {
    pub status: watch::Receiver<SyncStatus>,
    pub power: watch::Receiver<crate::power::PowerView>,
    pub reads: crate::reads::Reads,
    pub kiosk: Option<Arc<crate::kiosk::Kiosk>>,
    pub lanes: Option<crate::lanes::LaneRegistry>,
    pub voice: Option<crate::voice::Voice>,
    /// On the data partition: its free space is what the store has left.
    pub state_dir: PathBuf,
}

/// Set once every subsystem runs (the link and the lanes start before).
pub type Slot = Arc<std::sync::OnceLock<Sources>>;

impl Sources {
    /// Attached devices and their state: (family and name, state).
    pub fn devices(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(k) = &self.kiosk {
            let state = crate::dbus::printer_state(k.watch_printer().borrow().as_ref());
            out.push(("printer".to_owned(), state));
        }
        let p = self.power.borrow();
        if let Some(src) = &p.source {
            out.push((format!("ups ({src})"), p.connection.clone()));
        }
        drop(p);
        out.extend(self.reads.states());
        if let Some(v) = &self.voice {
            out.push(("speaker".to_owned(), v.state()));
        }
        for l in self.lanes.iter().flat_map(|r| r.iter()) {
            out.push((
                format!("gate of {}", l.name),
                l.gate.watch_state().borrow().to_string(),
            ));
        }
        out
    }

    pub fn summary(&self) -> HealthReport {
        let now = jiff::Timestamp::now().as_millisecond();
        let status = self.status.borrow().clone();
        let mut items = vec![central(&status, now), clock(&status)];
        for (name, state) in self.devices() {
            // The UPS has a line of its own, with its charge.
            if !name.starts_with("ups ") {
                items.push(device(&name, &state));
            }
        }
        items.push(disk(&self.state_dir));
        items.push(ups(&self.power.borrow()));
        report(items)
    }
}

pub fn report(items: Vec<HealthItem>) -> HealthReport {
    let level = items
        .iter()
        .map(|i| level_of(&i.level))
        .max()
        .unwrap_or(Level::Green);
    HealthReport {
        level: level.as_str().to_owned(),
        items,
    }
}

fn level_of(s: &str) -> Level {
    match s {
        "green" => Level::Green,
        "amber" => Level::Amber,
        _ => Level::Red,
    }
}

fn item(
    subsystem: &str,
    name_zh: &str,
    level: Level,
    detail: String,
    check: (&str, &str),
) -> HealthItem {
    let (en, zh) = if level == Level::Green {
        ("", "")
    } else {
        check
    };
    HealthItem {
        subsystem: subsystem.to_owned(),
        name_zh: name_zh.to_owned(),
        level: level.as_str().to_owned(),
        detail,
        check_en: en.to_owned(),
        check_zh: zh.to_owned(),
    }
}

fn minutes(ms: i64) -> String {
    match ms / 60_000 {
        0 => format!("{} s", ms / 1000),
        m => format!("{m} min"),
    }
}

fn central(s: &SyncStatus, now: i64) -> HealthItem {
    let url = s.central_url.as_deref().unwrap_or("-");
    let why = s.last_error.as_deref().unwrap_or("no answer yet");
    let (level, detail, check) = match s.mode {
        LinkMode::Unprovisioned => (
            Level::Red,
            format!("not enrolled: {why}"),
            (
                "scan a setup code from the central system (or gatectl provision)",
                "扫描中心系统生成的设置码",
            ),
        ),
        LinkMode::Online => (Level::Green, format!("online ({url})"), ("", "")),
        LinkMode::Offline => {
            let for_ms = now - s.since_ms;
            let level = if for_ms >= OFFLINE_RED_MS {
                Level::Red
            } else {
                Level::Amber
            };
            (
                level,
                format!("offline for {}: {why}", minutes(for_ms)),
                (
                    "check the network cable, DNS and the firewall towards the central system",
                    "检查网线、DNS和到中心系统的防火墙",
                ),
            )
        }
    };
    item("central", "中心连接", level, detail, check)
}

fn clock(s: &SyncStatus) -> HealthItem {
    let check = (
        "set the device clock: check NTP (timedatectl)",
        "校准设备时钟：检查NTP",
    );
    match s.clock_skew_ms {
        None => item(
            "clock",
            "时钟",
            Level::Amber,
            "not compared with the central system yet".into(),
            check,
        ),
        Some(ms) => {
            let level = match ms.unsigned_abs() {
                a if a > SKEW_RED_MS as u64 => Level::Red,
                a if a > crate::central::sync::SKEW_REPORTED_MS as u64 => Level::Amber,
                _ => Level::Green,
            };
            item(
                "clock",
                "时钟",
                level,
                format!("{:+.1} s from the central system", ms as f64 / 1000.0),
                check,
            )
        }
    }
}

/// A device by its state as `Device1.Devices` shows it.
fn device(name: &str, state: &str) -> HealthItem {
    let family = name.split([' ', '(']).next().unwrap_or(name);
    let name_zh = match family {
        "printer" => "打印机",
        "scanner" => "扫码器",
        "id-reader" => "身份证阅读器",
        "ic-reader" => "IC卡读卡器",
        "speaker" => "扬声器",
        "gate" => "闸机",
        "display" => "显示屏",
        _ => "设备",
    };
    let level = if state == "connected" || state == "ready" {
        Level::Green
    } else if state.starts_with("failed") || state == "out of paper" || state.contains("error") {
        Level::Red
    } else {
        Level::Amber
    };
    let check = match family {
        "printer" => (
            "open the printer: paper, cover, cable and power",
            "检查打印机：纸张、盖子、线缆和电源",
        ),
        "speaker" => (
            "check the sound card and the [voice] device in gated.toml",
            "检查声卡和gated.toml的[voice]设置",
        ),
        "gate" => (
            "check the gate controller's power and its RS-485/network cable",
            "检查闸机控制器电源和RS-485/网线",
        ),
        _ => (
            "check the device's cable and its port in gated.toml",
            "检查设备线缆和gated.toml中的端口",
        ),
    };
    item(name, name_zh, level, state.to_owned(), check)
}

// fsblkcnt_t and c_ulong are 32 bits on some targets: the conversions stay.
#[allow(clippy::useless_conversion)]
fn disk(dir: &std::path::Path) -> HealthItem {
    let check = (
        "the data partition is filling up: check journal and log sizes, then call support",
        "数据分区将满：检查日志大小，联系技术支持",
    );
    match nix::sys::statvfs::statvfs(dir) {
        Ok(v) => {
            let block = u64::from(v.fragment_size());
            let free = u64::from(v.blocks_available()) * block;
            let total = (u64::from(v.blocks()) * block).max(1);
            let percent = free as f64 * 100.0 / total as f64;
            let level = if percent < DISK_RED_PERCENT {
                Level::Red
            } else if percent < DISK_AMBER_PERCENT {
                Level::Amber
            } else {
                Level::Green
            };
            item(
                "disk",
                "数据分区",
                level,
                format!(
                    "{} MB free of {} MB ({percent:.0} %)",
                    free / 1_000_000,
                    total / 1_000_000
                ),
                check,
            )
        }
        Err(e) => item(
            "disk",
            "数据分区",
            Level::Red,
            format!("{}: {e}", dir.display()),
            check,
        ),
    }
}

fn ups(p: &crate::power::PowerView) -> HealthItem {
    let (level, check) = if p.source.is_none() {
        (
            Level::Amber,
            (
                "no UPS configured: a power cut stops the device without its fallback",
                "未配置UPS：断电时无法进入应急模式",
            ),
        )
    } else if p.connection.starts_with("failed") || p.connection.starts_with("reconnecting") {
        (
            Level::Red,
            (
                "the UPS does not answer: check its USB/serial cable and nut-server",
                "UPS无应答：检查USB/串口线和nut-server",
            ),
        )
    } else if p.state.is_none() {
        (
            Level::Amber,
            ("waiting for the UPS's first answer", "等待UPS应答"),
        )
    } else if p.on_battery() {
        (
            Level::Amber,
            (
                "on battery: check the mains supply",
                "正在使用电池：检查市电",
            ),
        )
    } else {
        (Level::Green, ("", ""))
    };
    let detail = match &p.source {
        Some(src) if p.state.is_none() => format!("{src}: {}", p.connection),
        _ => p.describe(),
    };
    item("ups", "不间断电源", level, detail, check)
}

impl From<HealthReport> for gated_api::types::HealthView {
    fn from(r: HealthReport) -> Self {
        gated_api::types::HealthView {
            level: r.level,
            items: r
                .items
                .into_iter()
                .map(|i| gated_api::types::HealthLine {
                    subsystem: i.subsystem,
                    name_zh: i.name_zh,
                    level: i.level,
                    detail: i.detail,
                    check_en: i.check_en,
                    check_zh: i.check_zh,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_item_sets_the_level() {
        let g = device("scanner a", "connected");
        let a = device("scanner b", "reconnecting (attempt 2): no such file");
        let r = device("printer", "out of paper");
        assert_eq!(g.level, "green");
        assert!(g.check_en.is_empty());
        assert_eq!(a.level, "amber");
        assert_eq!(r.level, "red");
        assert!(r.check_en.contains("paper"), "{}", r.check_en);
        assert_eq!(report(vec![g.clone(), a.clone()]).level, "amber");
        assert_eq!(report(vec![g, a, r]).level, "red");
    }

    #[test]
    fn a_link_long_offline_is_red_and_an_unenrolled_one_says_how_to_enroll() {
        let now = 100 * 60_000;
        let mut s = SyncStatus {
            mode: LinkMode::Offline,
            since_ms: now - 60_000,
            ..SyncStatus::default()
        };
        assert_eq!(central(&s, now).level, "amber");
        s.since_ms = now - OFFLINE_RED_MS;
        let i = central(&s, now);
        assert_eq!(i.level, "red");
        assert!(i.detail.contains("offline for 10 min"), "{}", i.detail);
        s.mode = LinkMode::Unprovisioned;
        assert!(central(&s, now).check_en.contains("setup code"));
    }

    #[test]
    fn clock_skew_grades() {
        let at = |ms| {
            clock(&SyncStatus {
                clock_skew_ms: ms,
                ..SyncStatus::default()
            })
            .level
        };
        assert_eq!(at(Some(1_500)), "green");
        assert_eq!(at(Some(-300_000)), "amber");
        assert_eq!(at(Some(SKEW_RED_MS + 1)), "red");
        assert_eq!(at(None), "amber");
    }

    #[test]
    fn the_data_partition_is_measured_and_a_missing_one_is_red() {
        let d = tempfile::tempdir().unwrap();
        let i = disk(d.path());
        assert!(i.detail.contains("MB free of"), "{}", i.detail);
        let gone = disk(&d.path().join("absent"));
        assert_eq!(gone.level, "red");
    }
}
