# nooelint: oelint.var.bbclassextend - target-only appliance software
SUMMARY = "Scenic-area ticket kiosk touchscreen app (Slint)"
DESCRIPTION = "Self-service ticket sale, pickup of tickets bought online, and ticket queries on a touchscreen, in Chinese and English; a client of gated over D-Bus, drawn straight on DRM/KMS with libinput (Slint's linuxkms backend)."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "graphics"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=4e349058bd8fe926ae6d7ae68a6c55cb"

DEPENDS = "fontconfig libdrm libinput libxkbcommon seatd udev virtual/egl virtual/libgbm virtual/libgles2"

# Built from the repository this layer lives in (scenicpark_src: externalsrc).
PV = "0.1.0+git"
SRC_URI = ""

inherit scenicpark_src systemd useradd features_check

REQUIRED_DISTRO_FEATURES = "opengl"
CARGO_BUILD_FLAGS += "-p kiosk"

do_install:append() {
    r=${SCENICPARK_REPO}
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/kiosk
    install -m 0644 $r/systemd/kiosk.service ${D}${systemd_system_unitdir}/
    # The app's settings: root:kiosk 0640 (also tmpfiles.d).
    install -m 0640 -g kiosk $r/image/etc/kiosk/kiosk.toml ${D}${sysconfdir}/kiosk/
}

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir / --shell /sbin/nologin --user-group --groups video,render,input kiosk"

SYSTEMD_SERVICE:${PN} = "kiosk.service"
SYSTEMD_AUTO_ENABLE = "enable"

CONFFILES:${PN} = "${sysconfdir}/kiosk/kiosk.toml"
# Chinese text needs a CJK font; xkeyboard-config for libxkbcommon.
RDEPENDS:${PN} = "gated seatd source-han-sans-cn-fonts xkeyboard-config"

CVE_PRODUCT = "scenicpark:kiosk"
