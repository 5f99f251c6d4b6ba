//! Opening serial ports with errors an engineer can act on.

use std::io;
use std::path::Path;

use tokio_serial::{ClearBuffer, SerialPort, SerialPortBuilderExt};

/// Opens `path` at `baud`, 8N1, raw, exclusive.
pub fn open(path: &Path, baud: u32) -> Result<tokio_serial::SerialStream, String> {
    let path_str = path.to_string_lossy();
    tokio_serial::new(path_str.as_ref(), baud)
        .open_native_async()
        .map_err(|e| {
            let io: io::Error = e.into();
            describe_open_error(path, &io)
        })
}

/// "what failed, where, and what to do" for a failed open.
pub fn describe_open_error(path: &Path, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => format!("{}: no such device (unplugged?)", path.display()),
        io::ErrorKind::PermissionDenied => crate::node::permission_denied(path).to_string(),
        _ => format!("{}: cannot open: {e}", path.display()),
    }
}

/// Drops bytes received but not read yet (late answers to timed-out requests).
pub fn discard_input(port: &tokio_serial::SerialStream) {
    // Best effort: a port that cannot flush still works, with a stale byte risk.
    let _ = port.clear(ClearBuffer::Input);
}
