//! Pseudo-terminals for simulators: the simulator holds the master end and
//! the real backend opens the slave path exactly as it would open
//! `/dev/ttyUSB0`. A symlink gives the slave a stable name, so a device can be
//! "unplugged" (the PTY closed) and "plugged back" (a new PTY behind the same
//! name).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

/// The master end of a PTY, with its slave's path and an optional stable link.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held open so the master never sees EIO while the backend reopens the
    /// port (a real device does not vanish when the host closes it).
    _slave: OwnedFd,
    slave_path: PathBuf,
    link: Option<PathBuf>,
}

impl Pty {
    /// Opens a PTY pair in raw mode (no echo, no line discipline).
    pub fn open() -> io::Result<Self> {
        let pair = openpty(None, None).map_err(io::Error::from)?;
        let mut t = tcgetattr(&pair.slave).map_err(io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(io::Error::from)?;
        let flags = fcntl(&pair.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        fcntl(
            &pair.master,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(io::Error::from)?;
        // The AsyncFd owns the OwnedFd, so the fd cannot be closed behind its
        // back: the I/O-safety hole the deprecation warns of does not apply.
        #[allow(deprecated)]
        let master = AsyncFd::new(pair.master)?;
        Ok(Pty {
            master,
            _slave: pair.slave,
            slave_path,
            link: None,
        })
    }

    /// Opens a PTY and points `link` at its slave (replacing an old link atomically).
    pub fn open_at(link: &Path) -> io::Result<Self> {
        let mut pty = Self::open()?;
        let tmp = link.with_extension("new-link");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&pty.slave_path, &tmp)?;
        std::fs::rename(&tmp, link)?;
        pty.link = Some(link.to_owned());
        Ok(pty)
    }

    /// The path a backend opens: the link when there is one, else `/dev/pts/N`.
    pub fn path(&self) -> &Path {
        self.link.as_deref().unwrap_or(&self.slave_path)
    }

    /// Reads what the host wrote to the device.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends bytes to the host, as the device would.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Raw fd of the master, for diagnostics.
    pub fn master_fd(&self) -> i32 {
        self.master.get_ref().as_raw_fd()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // An unplugged device leaves no name behind.
        if let Some(link) = &self.link
            && std::fs::read_link(link).is_ok_and(|t| t == self.slave_path)
        {
            let _ = std::fs::remove_file(link);
        }
    }
}
