//! Logging through `tracing`: to journald when systemd connected our stderr to
//! the journal, to stderr otherwise. `RUST_LOG` filters as usual (default `info`).

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Who is logging: a daemon (timestamps, info) or a command-line tool (no
/// timestamps, warnings only, one short line each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Daemon,
    Cli,
}

/// Installs the global subscriber. `ident` is the journal's SYSLOG_IDENTIFIER.
pub fn init(ident: &str, style: Style) {
    let default = match style {
        Style::Daemon => "info",
        Style::Cli => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        registry
            .with(journald.with_syslog_identifier(ident.to_owned()))
            .init();
        return;
    }
    let ansi = std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    match style {
        Style::Daemon => registry.with(layer).init(),
        Style::Cli => registry.with(layer.without_time().compact()).init(),
    }
}

/// True when `JOURNAL_STREAM` names the device and inode of our stderr, as
/// systemd.exec(5) says to check (the variable is inherited by children whose
/// stderr may be elsewhere).
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}
