# gated reads the running image's version from IMAGE_VERSION here: the
# version of the bundle that carries this image (scenicpark-bundle).
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
OS_RELEASE_FIELDS:append = " IMAGE_VERSION"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
IMAGE_VERSION = "${SCENICPARK_IMAGE_VERSION}"
