# Recipes of this layer build the Cargo workspace of the repository the
# layer lives in (externalsrc): one source of truth for code, units, rules,
# policy and image files. Each recipe picks its packages with -p.

inherit externalsrc cargo_bin

EXTERNALSRC = "${SCENICPARK_REPO}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"
CARGO_MANIFEST_PATH = "${SCENICPARK_REPO}/Cargo.toml"
# Cargo.lock is part of the repository: the crates the tests ran with.
EXTRA_CARGO_FLAGS:prepend = "--locked "
# Keep the build machine's paths out of the binaries (buildpaths QA).
RUSTFLAGS += "--remap-path-prefix=${SCENICPARK_REPO}=/usr/src/debug/${PN}"
