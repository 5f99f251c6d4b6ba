# nooelint: oelint.var.suggestedvar.CVE_PRODUCT - an image, not a product
SUMMARY = "Scenic-area kiosk and gate appliance image"
DESCRIPTION = "systemd, dbus, seatd and libinput, CJK fonts, gated and the kiosk app on a read-only root filesystem with two slots (A/B) that RAUC updates from signed bundles, and a writable data partition for /var."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "images"
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_INSTALL += "gated kiosk dbus seatd libinput source-han-sans-cn-fonts systemd-analyze"
# The engineer's tool where engineers expect it: `man gatectl`, tab completion.
IMAGE_INSTALL += "gated-bash-completion gated-doc bash bash-completion man-db"
# RAUC with its D-Bus service, system.conf and keyring (rauc-conf); the
# kernel in the root slot itself, where the bootloader loads it from.
IMAGE_INSTALL += "rauc rauc-conf kernel-image"
# gated marks a new slot good once its devices answer, not RAUC at boot.
BAD_RECOMMENDATIONS += "rauc-mark-good"

# The partition layout: image/wks/, one per machine. ext4: the root
# filesystem a bundle carries (scenicpark-bundle); a root slot holds 1536 MiB.
IMAGE_FSTYPES += "wic wic.bmap ext4"
IMAGE_ROOTFS_MAXSIZE = "1572864"
WKS_FILE = "scenicpark-ab.wks"
WKS_FILE:qemux86-64 = "scenicpark-ab-qemux86-64.wks"
WKS_SEARCH_PATH:prepend = "${SCENICPARK_REPO}/image/wks:"

# x86-64: the wks file names GRUB's script by path (image/rauc/grub.cfg),
# and the ESP starts with a grubenv (scenicpark-grubenv).
WICVARS:append = " SCENICPARK_REPO"
do_image_wic[file-checksums] += "${SCENICPARK_REPO}/image/rauc/grub.cfg:True"
IMAGE_EFI_BOOT_FILES:qemux86-64 = "scenicpark-grubenv;EFI/BOOT/grubenv"
SCENICPARK_WIC_DEPENDS = ""
SCENICPARK_WIC_DEPENDS:qemux86-64 = "scenicpark-grubenv:do_deploy"
do_image_wic[depends] += "${SCENICPARK_WIC_DEPENDS}"
