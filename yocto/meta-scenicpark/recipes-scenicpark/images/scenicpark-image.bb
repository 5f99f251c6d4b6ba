# nooelint: oelint.var.suggestedvar.CVE_PRODUCT - an image, not a product
SUMMARY = "Scenic-area kiosk and gate appliance image"
DESCRIPTION = "systemd, dbus, seatd and libinput, CJK fonts, gated and the kiosk app on a read-only root filesystem with two slots (A/B) and a writable data partition for /var."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "images"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_INSTALL += "gated kiosk dbus seatd libinput source-han-sans-cn-fonts systemd-analyze"

# The partition layout is the repository's image/wks/scenicpark-ab.wks.
IMAGE_FSTYPES += "wic wic.bmap"
WKS_FILE = "scenicpark-ab.wks"
WKS_SEARCH_PATH:prepend = "${SCENICPARK_REPO}/image/wks:"
