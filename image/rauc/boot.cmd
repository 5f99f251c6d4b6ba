# A/B boot selection on the Raspberry Pi 4 (U-Boot; mkimage -T script makes
# boot.scr of it), with RAUC's U-Boot variables: BOOT_ORDER ("A B") and
# BOOT_A_LEFT, BOOT_B_LEFT (attempts left). RAUC writes them: an install puts
# the new slot first with 3 left; "mark good" sets 3; "mark bad" 0.
#
# The rule is the GRUB script's (image/rauc/grub.cfg): the first slot in
# BOOT_ORDER with attempts left boots; an attempt is spent (saved before the
# kernel is loaded) only when another slot with attempts left remains, so
# power cuts during boot never leave both slots without attempts.
# A factory card: A holds the image, B is empty until the first install.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0
setenv BOOT_SLOT
setenv FALLBACK
for S in ${BOOT_ORDER}; do
    if test "${S}" = "A"; then setenv LEFT ${BOOT_A_LEFT}; else setenv LEFT ${BOOT_B_LEFT}; fi
    if test ${LEFT} -gt 0; then
        if test -z "${BOOT_SLOT}"; then setenv BOOT_SLOT ${S}; else setenv FALLBACK ${S}; fi
    fi
done
if test -z "${BOOT_SLOT}"; then
    # Both without attempts (both marked bad): the first, so the device comes up.
    for S in ${BOOT_ORDER}; do
        if test -z "${BOOT_SLOT}"; then setenv BOOT_SLOT ${S}; fi
    done
fi
if test -n "${FALLBACK}"; then
    # setexpr counts in hex; 0-3 read the same.
    if test "${BOOT_SLOT}" = "A"; then setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1; else setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1; fi
    setenv LEFT
    setenv FALLBACK
    saveenv
fi
if test "${BOOT_SLOT}" = "A"; then setenv SLOTPART 2; else setenv SLOTPART 3; fi
echo "scenicpark: booting slot ${BOOT_SLOT} (BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT})"
test -n "${devtype}" || setenv devtype mmc
test -n "${devnum}" || setenv devnum 0
# The firmware's arguments (cmdline.txt: console, display memory) come first.
if fdt addr ${fdt_addr}; then fdt get value bootargs /chosen bootargs; fi
setenv bootargs "${bootargs} root=/dev/mmcblk0p${SLOTPART} ro rootwait rauc.slot=${BOOT_SLOT} panic=-1"
load ${devtype} ${devnum}:${SLOTPART} ${kernel_addr_r} /boot/Image && booti ${kernel_addr_r} - ${fdt_addr}
echo "scenicpark: slot ${BOOT_SLOT} has no kernel at /boot/Image"
