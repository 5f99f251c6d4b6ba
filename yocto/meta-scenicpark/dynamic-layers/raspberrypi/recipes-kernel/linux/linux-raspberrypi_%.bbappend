# What RAUC needs to install a verity bundle, built in: the fragment the
# x86-64 kernel gets too (recipes-kernel/linux/files).
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
FILESEXTRAPATHS:prepend := "${SCENICPARK_REPO}/yocto/meta-scenicpark/recipes-kernel/linux/files:"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
SRC_URI += "file://scenicpark-rauc.cfg"
