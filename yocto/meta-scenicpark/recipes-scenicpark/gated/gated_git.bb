# nooelint: oelint.var.bbclassextend - target-only appliance software
SUMMARY = "Scenic-area device daemon (gated) and the field engineer's tool (gatectl)"
DESCRIPTION = "gated drives turnstiles, wing gates, ticket printers, ID-card, IC-card and QR readers, validates tickets at the lane (offline too), sells and prints at the kiosk, and syncs with the central ticketing system over HTTPS. gatectl provisions and tests a device on site."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "console/utils"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=4e349058bd8fe926ae6d7ae68a6c55cb"

DEPENDS = "alsa-lib udev"

# Built from the repository this layer lives in (scenicpark_src: externalsrc).
PV = "0.1.0+git"
SRC_URI = ""

inherit bash-completion scenicpark_src systemd useradd

# The Raspberry Pi GPIO backend is switched on by yocto/kas/raspberrypi4-64.yml.
CARGO_BUILD_FLAGS += "-p gated"

do_install:append() {
    r=${SCENICPARK_REPO}
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/gated ${D}${sysconfdir}/dbus-1/system.d \
        ${D}${nonarch_base_libdir}/udev/rules.d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d \
        ${D}${sysconfdir}/systemd/journald.conf.d ${D}${datadir}/polkit-1/rules.d \
        ${D}${datadir}/gated/sounds ${D}${sysconfdir}/gated/sounds \
        ${D}${datadir}/bash-completion/completions ${D}${datadir}/zsh/site-functions ${D}${mandir}/man1
    install -m 0644 $r/systemd/gated.service $r/systemd/gated-provision.service ${D}${systemd_system_unitdir}/
    install -m 0644 $r/systemd/gated-update-watchdog.service $r/systemd/gated-update-watchdog.timer ${D}${systemd_system_unitdir}/
    install -m 0640 -g gated $r/image/etc/gated/gated.toml ${D}${sysconfdir}/gated/
    install -m 0644 $r/image/etc/dbus-1/system.d/cn.scenicpark.Gated.conf ${D}${sysconfdir}/dbus-1/system.d/
    install -m 0644 $r/udev/70-scenicpark.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -m 0644 $r/image/usr/lib/sysusers.d/scenicpark.conf ${D}${nonarch_libdir}/sysusers.d/
    install -m 0644 $r/image/usr/lib/tmpfiles.d/scenicpark.conf ${D}${nonarch_libdir}/tmpfiles.d/
    install -m 0644 $r/image/etc/systemd/journald.conf.d/scenicpark.conf ${D}${sysconfdir}/systemd/journald.conf.d/
    install -m 0644 $r/image/usr/share/polkit-1/rules.d/50-scenicpark-gated.rules ${D}${datadir}/polkit-1/rules.d/
    # The lanes' default voice prompts; a site's recordings go to /etc/gated/sounds.
    install -m 0644 $r/gated/sounds/*.wav ${D}${datadir}/gated/sounds/
    # gatectl's completions and man pages, generated from its clap definition.
    install -m 0644 $r/gated/doc/gatectl.bash ${D}${datadir}/bash-completion/completions/gatectl
    install -m 0644 $r/gated/doc/_gatectl ${D}${datadir}/zsh/site-functions/
    install -m 0644 $r/gated/doc/*.1 ${D}${mandir}/man1/
}

# The read-only root needs the users at build time; the same ones as sysusers.d.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "-r gpio; -r gated-engineer"
USERADD_PARAM:${PN} = "--system --home ${localstatedir}/lib/gated --no-create-home --shell /sbin/nologin --user-group --groups dialout,input,gpio,audio gated"

SYSTEMD_SERVICE:${PN} = "gated.service gated-provision.service gated-update-watchdog.timer"
SYSTEMD_AUTO_ENABLE = "enable"

FILES:${PN} += "${datadir}/zsh/site-functions ${nonarch_base_libdir}/udev/rules.d ${nonarch_libdir}/sysusers.d ${nonarch_libdir}/tmpfiles.d ${sysconfdir}/systemd/journald.conf.d ${datadir}/polkit-1/rules.d"
CONFFILES:${PN} = "${sysconfdir}/gated/gated.toml"
# polkit: gated's power-off after a UPS power loss (its rule above).
RDEPENDS:${PN} = "dbus polkit"

CVE_PRODUCT = "scenicpark:gated"
