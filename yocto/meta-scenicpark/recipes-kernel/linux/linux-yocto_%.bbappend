# What RAUC needs to install a verity bundle (scenicpark-rauc.cfg). meta-rauc's
# own rauc.cfg has most of it, not SQUASHFS_XZ; hence a fragment of another name.
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
SRC_URI += "file://scenicpark-rauc.cfg"
