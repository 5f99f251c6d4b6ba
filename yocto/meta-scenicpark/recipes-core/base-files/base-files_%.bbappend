# The mounts of the partition layout (image/wks/), in the root filesystem's
# own fstab: an update writes a slot from the ext4 image, which never passes
# through wic, so fstab lines wic adds would be gone after the first update.
# RAUC's grub backend edits the grubenv on the ESP at /boot/efi (system.conf).
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
dirs755:append:qemux86-64 = " /boot/efi"

# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
do_install:append:qemux86-64() {
    printf '%s\n' \
        '/dev/vda1  /boot/efi  vfat  defaults,umask=0077  0  0' \
        '/dev/vda4  ${localstatedir}  ext4  defaults,noatime,commit=5  0  0' \
        >> ${D}${sysconfdir}/fstab
}

# U-Boot keeps its environment in uboot.env on the boot partition (fw_env.config).
do_install:append:raspberrypi4-64() {
    printf '%s\n' \
        '/dev/mmcblk0p1  /boot  vfat  defaults  0  0' \
        '/dev/mmcblk0p4  ${localstatedir}  ext4  defaults,noatime,commit=5  0  0' \
        >> ${D}${sysconfdir}/fstab
}
