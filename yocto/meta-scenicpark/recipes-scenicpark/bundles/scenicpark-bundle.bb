# nooelint: oelint.file.underscores, oelint.var.bbclassextend, oelint.var.suggestedvar.CVE_PRODUCT - a bundle of scenicpark-image: its version is RAUC_BUNDLE_VERSION
SUMMARY = "Signed RAUC update bundle of the appliance image"
DESCRIPTION = "scenicpark-image's root filesystem (ext4) as a RAUC bundle in the verity format, signed with the key at SCENICPARK_RAUC_KEY, for the devices of one machine."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "images"
LICENSE = "MIT"

SRC_URI = ""

inherit bundle

# RAUC installs a bundle only on a device whose system.conf
# (image/rauc/system-${MACHINE}.conf) has the same compatible.
RAUC_BUNDLE_COMPATIBLE = "scenicpark-${MACHINE}"
# The image's os-release says the same version (IMAGE_VERSION).
RAUC_BUNDLE_VERSION = "${SCENICPARK_IMAGE_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "scenicpark appliance ${SCENICPARK_IMAGE_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "scenicpark-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# The signing key and certificate (conf/layer.conf: the development CA's
# unless the build sets them).
RAUC_KEY_FILE = "${SCENICPARK_RAUC_KEY}"
RAUC_CERT_FILE = "${SCENICPARK_RAUC_CERT}"

# nooelint: oelint.task.docstrings - a prefunc of do_bundle, not a task
python scenicpark_signer_check() {
    for var in ('SCENICPARK_RAUC_KEY', 'SCENICPARK_RAUC_CERT'):
        path = d.getVar(var)
        if not os.path.isfile(path):
            bb.fatal('No file at %s = %s. A development build: run image/rauc/bundle --ca first. '
                     'A release build: set SCENICPARK_RAUC_KEY and SCENICPARK_RAUC_CERT to the release signer.' % (var, path))
}
do_bundle[prefuncs] += "scenicpark_signer_check"
# Sign again when the key or certificate changes.
do_bundle[file-checksums] += "${SCENICPARK_RAUC_KEY}:True ${SCENICPARK_RAUC_CERT}:True"
