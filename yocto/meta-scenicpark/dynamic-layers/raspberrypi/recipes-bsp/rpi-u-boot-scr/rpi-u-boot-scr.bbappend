# U-Boot runs image/rauc/boot.cmd: RAUC's A/B slot choice and the kernel
# from the chosen root slot, in place of meta-raspberrypi's boot.cmd.in
# (which loads the one kernel on the boot partition).
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
FILESEXTRAPATHS:prepend := "${SCENICPARK_REPO}/image/rauc:"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
SRC_URI = "file://boot.cmd"

# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
do_compile() {
    mkimage -A ${UBOOT_ARCH} -T script -C none -n "scenicpark A/B boot" -d ${UNPACKDIR}/boot.cmd boot.scr
}
