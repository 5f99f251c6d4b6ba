# nooelint: oelint.file.underscores, oelint.var.bbclassextend, oelint.var.suggestedvar.CVE_PRODUCT - a generated file for the x86-64 ESP: no version, no upstream
SUMMARY = "Initial GRUB environment of the A/B boot on x86-64"
DESCRIPTION = "EFI/BOOT/grubenv of the EFI system partition as the factory image starts: slot A good, slot B empty. image/rauc/grub.cfg reads it and counts boot attempts in it; RAUC's grub backend edits it."
HOMEPAGE = "https://github.com/scenicpark/appliance"
BUGTRACKER = "https://github.com/scenicpark/appliance/issues"
SECTION = "bootloaders"
LICENSE = "MIT"
# nooelint: oelint.var.licenseremotefile - no sources: the layer's license
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

# grub-editenv of the build host's GRUB.
DEPENDS = "grub-native"
SRC_URI = ""
INHIBIT_DEFAULT_DEPS = "1"

inherit deploy nopackages

S = "${UNPACKDIR}"

# GRUB's save_env rewrites an existing file in place and cannot create one.
do_compile() {
    rm -f ${B}/grubenv
    grub-editenv ${B}/grubenv create
    grub-editenv ${B}/grubenv set ORDER="A B" A_OK=1 B_OK=0 A_TRY=0 B_TRY=0
}

# The image's wic puts it on the ESP (IMAGE_EFI_BOOT_FILES).
do_deploy() {
    install -m 0644 ${B}/grubenv ${DEPLOYDIR}/scenicpark-grubenv
}
addtask deploy after do_compile before do_build
