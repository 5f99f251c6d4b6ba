# Recipes of this layer build the Cargo workspace of the repository the
# layer lives in (externalsrc): one source of truth for code, units, rules,
# policy and image files. Each recipe picks its packages with -p.
#
# oe-core's cargo class (Rust 1.94.1 in wrynose; the workspace needs 1.88):
# every crate of Cargo.lock is a checksummed crate:// fetch listed in
# scenicpark_crates.inc (scripts/yocto-crates.py writes it, the test command
# checks it), so cargo builds offline after do_fetch (--frozen).

inherit externalsrc cargo

require recipes-scenicpark/scenicpark_crates.inc

EXTERNALSRC = "${SCENICPARK_REPO}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"
CARGO_MANIFEST_PATH = "${SCENICPARK_REPO}/Cargo.toml"
# Cargo features of the recipe's package (the Pi's GPIO backend: hal/rpi).
CARGO_FEATURES ??= ""
CARGO_BUILD_FLAGS += "${@'--features ' + d.getVar('CARGO_FEATURES') if d.getVar('CARGO_FEATURES') else ''}"
# Keep the build machine's paths out of the binaries (buildpaths QA).
RUSTFLAGS += "--remap-path-prefix=${SCENICPARK_REPO}=/usr/src/debug/${PN}"
