//! `gatectl update install FILE|URL` and `gatectl update status`: software
//! updates through the running gated, which hands them to RAUC.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use gated_api::types::UpdateView;
use serde_json::json;

use crate::central::{done, load, when, with_gated};

/// `gatectl update install SOURCE [--reboot now|window]`: starts the install
/// and follows it with a progress bar until the bundle is in the other slot
/// (or refused); the reboot follows as asked.
pub fn install(source: &str, reboot: &str, json: bool) -> ExitCode {
    // A file named here is a file on this device: gated wants its absolute path.
    let source = if source.contains("://") {
        source.to_owned()
    } else {
        match std::path::absolute(source) {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => return done("update", json!({}), Err(format!("{source}: {e}")), json),
        }
    };
    let started = jiff::Timestamp::now().as_millisecond();
    let r = with_gated(async |g| {
        g.engineer.install_update(&source, reboot).await?;
        let mut bar = Bar::new(json);
        loop {
            let v = g.engineer.update_status().await?;
            bar.show(&v);
            let finished = v.last_at_ms >= started
                && ["installed", "failed", "good"].contains(&v.last_result.as_str());
            if finished && !["downloading", "installing"].contains(&v.operation.as_str()) {
                bar.end();
                return Ok(v);
            }
            // Polling a local daemon for a person's progress bar.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let r = match r {
        Err(e) => Err(e.to_string()),
        Ok(v) if v.last_result == "failed" => Err(format!("not installed: {}", v.last_detail)),
        Ok(v) => Ok(format!(
            "version {} installed ({}); {}",
            v.last_version,
            v.last_detail,
            if v.reboot == "now" || v.reboot.is_empty() {
                "the device reboots into it as soon as no passage or print is under way".to_owned()
            } else {
                format!(
                    "the device reboots into it in the quiet window {}",
                    v.reboot
                )
            }
        )),
    };
    done("update", json!({ "source": source }), r, json)
}

/// A progress bar on stderr, for a person at a terminal.
struct Bar {
    on: bool,
    last: String,
}

impl Bar {
    fn new(json: bool) -> Self {
        Bar {
            on: !json && std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    fn show(&mut self, v: &UpdateView) {
        if v.operation == "idle" {
            return;
        }
        let pct = v.progress_percent.min(100) as usize;
        let filled = pct * 30 / 100;
        let line = format!(
            "{:<11} [{}{}] {:>3} %  {}",
            v.operation,
            "#".repeat(filled),
            "-".repeat(30 - filled),
            pct,
            v.progress_message
        );
        if line == self.last {
            return;
        }
        let mut err = std::io::stderr();
        if self.on {
            let _ = write!(
                err,
                "\r\x1b[2K{}",
                line.chars().take(100).collect::<String>()
            );
        } else if !self.last.starts_with(&v.operation) || v.operation != "installing" {
            // Not a terminal: one line per step, not per percent.
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last = line;
    }

    fn end(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// `gatectl update status`.
pub fn status(config: &Path, json: bool) -> ExitCode {
    let tz = match load(config) {
        Ok(c) => c.time_zone(),
        Err(code) => return code,
    };
    let v = match with_gated(async |g| g.engineer.update_status().await) {
        Ok(v) => v,
        Err(e) => return done("update status", json!({}), Err(e.to_string()), json),
    };
    if json {
        let slots: Vec<_> = v
            .slots
            .iter()
            .map(|s| {
                json!({"name": s.name, "bootname": s.bootname, "state": s.state,
                       "boot_status": s.boot_status, "version": s.version})
            })
            .collect();
        println!(
            "{}",
            json!({
                "image_version": v.image_version, "booted_slot": v.booted_slot,
                "unavailable": v.unavailable, "operation": v.operation,
                "progress_percent": v.progress_percent, "progress_message": v.progress_message,
                "health": v.health, "slots": slots,
                "last": (!v.last_result.is_empty()).then(|| json!({
                    "version": v.last_version, "result": v.last_result,
                    "detail": v.last_detail, "at_ms": v.last_at_ms})),
            })
        );
        return ExitCode::SUCCESS;
    }
    println!("image      version {}", v.image_version);
    if v.unavailable.is_empty() {
        println!("booted     slot {}", v.booted_slot);
        for (i, s) in v.slots.iter().enumerate() {
            println!(
                "{:<10} {} ({})  {:<8}  {:<4}  {}",
                if i == 0 { "slots" } else { "" },
                s.bootname,
                s.name,
                s.state,
                s.boot_status,
                if s.version.is_empty() {
                    "factory image".to_owned()
                } else {
                    format!("version {}", s.version)
                }
            );
        }
    } else {
        println!("updates    not available: {}", v.unavailable);
    }
    let op = match v.operation.as_str() {
        "idle" => "idle".to_owned(),
        op => format!("{op} {} % {}", v.progress_percent, v.progress_message),
    };
    println!("operation  {op}");
    println!("health     {}", v.health);
    if v.last_result.is_empty() {
        println!("last       no update since this device was installed");
    } else {
        let version = if v.last_version.is_empty() {
            String::new()
        } else {
            format!("version {}: ", v.last_version)
        };
        println!(
            "last       {version}{} at {}\n           {}",
            v.last_result,
            when(v.last_at_ms, &tz),
            v.last_detail
        );
    }
    ExitCode::SUCCESS
}

/// `gatectl update watchdog`: run by gated-update-watchdog.timer long after
/// boot; reboots a new slot that is still on trial (gated never marked it
/// good, or never ran), so the bootloader counts the attempt.
pub fn watchdog(state_dir: &Path, json: bool) -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt
        .block_on(gated::update::watchdog(state_dir))
        .map(|w| match w {
            gated::update::Watchdog::NothingOnTrial => {
                "nothing on trial in the booted slot: no action".to_owned()
            }
            gated::update::Watchdog::Rebooted(why) => format!("{why}: rebooting"),
        });
    done("update watchdog", json!({}), r, json)
}
