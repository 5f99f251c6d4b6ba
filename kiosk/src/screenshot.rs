//! Renders the UI to PNG without a display, through Slint's software renderer
//! on a window of our own: what a visitor would see, for people to look at
//! and for tests to check.

use std::path::Path;
use std::rc::Rc;

use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};
use slint::{ComponentHandle, PhysicalSize, PlatformError};

/// Panel sizes the appliance ships with.
pub const PORTRAIT: (u32, u32) = (1080, 1920);
pub const LANDSCAPE: (u32, u32) = (1920, 1080);

struct Headless {
    window: Rc<MinimalSoftwareWindow>,
}

impl Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(self.window.clone())
    }
}

/// Installs the headless platform for this process (once; before any
/// component is created) and returns its window.
pub fn init() -> Result<Rc<MinimalSoftwareWindow>, PlatformError> {
    let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
    slint::platform::set_platform(Box::new(Headless {
        window: window.clone(),
    }))
    .map_err(|e| PlatformError::Other(format!("cannot install the headless platform: {e}")))?;
    Ok(window)
}

/// Renders `component` at `size` and returns its pixels.
pub fn render(
    window: &MinimalSoftwareWindow,
    component: &impl ComponentHandle,
    size: (u32, u32),
) -> Result<image::RgbaImage, PlatformError> {
    window.set_size(PhysicalSize::new(size.0, size.1));
    component.show()?;
    let buf = component.window().take_snapshot()?;
    image::RgbaImage::from_raw(buf.width(), buf.height(), buf.as_bytes().to_vec())
        .ok_or_else(|| PlatformError::Other("snapshot has the wrong size".into()))
}

/// Renders `component` at `size` into a PNG file.
pub fn save(
    window: &MinimalSoftwareWindow,
    component: &impl ComponentHandle,
    size: (u32, u32),
    path: &Path,
) -> Result<(), PlatformError> {
    render(window, component, size)?
        .save(path)
        .map_err(|e| PlatformError::Other(format!("cannot write {}: {e}", path.display())))
}
