# image/rauc/grub.cfg prints the slot it boots. The ESP has no module
# directory to load commands from: echo goes into the EFI binary.
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
GRUB_BUILDIN:append = " echo"
