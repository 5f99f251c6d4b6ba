//! GPIO input lines, shared by gates and power-fail inputs: the trait, a
//! debounced follower, and the real backends (GPIO character device; rppal
//! on a Raspberry Pi with feature `rpi`).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::sync::mpsc;

/// An input line that reports changes of its physical level.
pub trait InputLine: Send + 'static {
    /// The level now (true = high).
    fn level(&mut self) -> io::Result<bool>;
    /// Waits for the next change and returns the new level.
    fn next_level(&mut self) -> impl Future<Output = io::Result<bool>> + Send;
}

/// Follows one input in a task of its own: debounces it (a change counts
/// once it held for the debounce period) and sends its logical changes
/// (true = active); the current state first if it is active. An error ends
/// the stream after being sent.
pub fn debounced<I: InputLine>(
    mut line: I,
    active_low: bool,
    debounce: Duration,
) -> mpsc::Receiver<io::Result<bool>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut active = match line.level() {
            Ok(l) => l != active_low,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if active && tx.send(Ok(true)).await.is_err() {
            return;
        }
        loop {
            let mut level = match line.next_level().await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                match tokio::time::timeout(debounce, line.next_level()).await {
                    Ok(Ok(l)) => level = l,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(_) => break,
                }
            }
            let now = level != active_low;
            if now != active {
                active = now;
                if tx.send(Ok(active)).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Inputs on the GPIO character device (gpio-cdev line events).
pub mod cdev {
    use super::InputLine;
    use futures_util::StreamExt;
    use gpio_cdev::{AsyncLineEventHandle, Chip, EventRequestFlags, LineRequestFlags};
    use std::io;

    fn io_err(e: gpio_cdev::Error) -> io::Error {
        io::Error::other(e.to_string())
    }

    /// An input line with both-edge events.
    pub struct CdevInput {
        events: AsyncLineEventHandle,
        level: bool,
    }

    impl std::fmt::Debug for CdevInput {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CdevInput")
                .field("level", &self.level)
                .finish_non_exhaustive()
        }
    }

    impl CdevInput {
        pub fn open(chip: &str, line: u32, consumer: &str) -> io::Result<Self> {
            let mut chip = Chip::new(chip).map_err(io_err)?;
            let handle = chip
                .get_line(line)
                .map_err(io_err)?
                .events(
                    LineRequestFlags::INPUT,
                    EventRequestFlags::BOTH_EDGES,
                    consumer,
                )
                .map_err(io_err)?;
            let level = handle.get_value().map_err(io_err)? != 0;
            let events = AsyncLineEventHandle::new(handle).map_err(io_err)?;
            Ok(CdevInput { events, level })
        }
    }

    impl InputLine for CdevInput {
        fn level(&mut self) -> io::Result<bool> {
            Ok(self.level)
        }

        async fn next_level(&mut self) -> io::Result<bool> {
            match self.events.next().await {
                Some(Ok(ev)) => {
                    self.level = ev.event_type() == gpio_cdev::EventType::RisingEdge;
                    Ok(self.level)
                }
                Some(Err(e)) => Err(io_err(e)),
                None => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "line event stream ended",
                )),
            }
        }
    }

    /// An output line as an embedded-hal pin (linux-embedded-hal's `CdevPin`).
    pub fn output(
        chip: &str,
        line: u32,
        consumer: &str,
    ) -> io::Result<linux_embedded_hal::CdevPin> {
        let mut chip = Chip::new(chip).map_err(io_err)?;
        let handle = chip
            .get_line(line)
            .map_err(io_err)?
            .request(LineRequestFlags::OUTPUT, 0, consumer)
            .map_err(io_err)?;
        linux_embedded_hal::CdevPin::new(handle).map_err(|e| io::Error::other(format!("{e:?}")))
    }
}

/// Raspberry Pi GPIO through rppal: outputs are rppal's embedded-hal pins,
/// inputs come from rppal's interrupt thread.
#[cfg(feature = "rpi")]
pub mod rpi {
    use super::InputLine;
    use std::io;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[derive(Debug)]
    pub struct RppalInput {
        _pin: rppal::gpio::InputPin,
        rx: mpsc::UnboundedReceiver<bool>,
        level: bool,
    }

    fn io_err(e: rppal::gpio::Error) -> io::Error {
        io::Error::other(e.to_string())
    }

    impl RppalInput {
        pub fn open(bcm: u8, debounce: Duration) -> io::Result<Self> {
            let mut pin = rppal::gpio::Gpio::new()
                .map_err(io_err)?
                .get(bcm)
                .map_err(io_err)?
                .into_input_pullup();
            let level = pin.is_high();
            let (tx, rx) = mpsc::unbounded_channel();
            pin.set_async_interrupt(rppal::gpio::Trigger::Both, Some(debounce), move |ev| {
                let _ = tx.send(ev.trigger == rppal::gpio::Trigger::RisingEdge);
            })
            .map_err(io_err)?;
            Ok(RppalInput {
                _pin: pin,
                rx,
                level,
            })
        }
    }

    impl InputLine for RppalInput {
        fn level(&mut self) -> io::Result<bool> {
            Ok(self.level)
        }

        async fn next_level(&mut self) -> io::Result<bool> {
            self.level = self
                .rx
                .recv()
                .await
                .ok_or_else(|| io::Error::other("interrupt thread ended"))?;
            Ok(self.level)
        }
    }

    pub fn output(bcm: u8) -> io::Result<rppal::gpio::OutputPin> {
        Ok(rppal::gpio::Gpio::new()
            .map_err(io_err)?
            .get(bcm)
            .map_err(io_err)?
            .into_output_low())
    }
}

/// Simulated input lines, for machines without GPIO.
#[cfg(feature = "sim")]
pub mod sim {
    use super::InputLine;
    use tokio::sync::mpsc;

    /// An input line whose levels come from a channel.
    #[derive(Debug)]
    pub struct SimLine {
        rx: mpsc::UnboundedReceiver<bool>,
        level: bool,
    }

    impl SimLine {
        pub fn new(rx: mpsc::UnboundedReceiver<bool>, level: bool) -> Self {
            SimLine { rx, level }
        }

        /// A line at `level`, and the sender that changes it.
        pub fn pair(level: bool) -> (mpsc::UnboundedSender<bool>, Self) {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, SimLine { rx, level })
        }
    }

    impl InputLine for SimLine {
        fn level(&mut self) -> std::io::Result<bool> {
            Ok(self.level)
        }

        async fn next_level(&mut self) -> std::io::Result<bool> {
            self.level = self
                .rx
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("simulated line removed"))?;
            Ok(self.level)
        }
    }
}
