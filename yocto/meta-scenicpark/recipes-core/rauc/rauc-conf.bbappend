# The device's RAUC configuration, from the repository: image/rauc/system-${MACHINE}.conf
# as /etc/rauc/system.conf, and the CA certificate at SCENICPARK_RAUC_KEYRING
# (conf/layer.conf) as the keyring its [keyring] names, /etc/rauc/ca.cert.pem.
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
FILESEXTRAPATHS:prepend := "${SCENICPARK_REPO}/image/rauc:"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
SRC_URI = "file://system-${MACHINE}.conf"
# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
PACKAGE_ARCH = "${MACHINE_ARCH}"

# Never an image without a keyring: it would accept no update, ever.
# nooelint: oelint.vars.noncoreoverride, oelint.task.docstrings - a prefunc of do_install, not a task
python scenicpark_keyring_check() {
    keyring = d.getVar('SCENICPARK_RAUC_KEYRING')
    pem = ''
    if os.path.isfile(keyring):
        with open(keyring) as f:
            pem = f.read()
    if 'BEGIN CERTIFICATE' not in pem:
        bb.fatal('No RAUC keyring (a CA certificate, PEM) at SCENICPARK_RAUC_KEYRING = %s. '
                 'A development build: run image/rauc/bundle --ca first. '
                 'A field build: set SCENICPARK_RAUC_KEYRING to the release CA certificate.' % keyring)
    if '/target/rauc-dev-ca/' in keyring:
        bb.warn('This image trusts the development CA in %s: not for the field.' % os.path.dirname(keyring))
}
do_install[prefuncs] += "scenicpark_keyring_check"
do_install[file-checksums] += "${SCENICPARK_RAUC_KEYRING}:True"

# nooelint: oelint.vars.noncoreoverride - the appliance's configuration
do_install() {
    install -d ${D}${sysconfdir}/rauc
    install -m 0644 ${UNPACKDIR}/system-${MACHINE}.conf ${D}${sysconfdir}/rauc/system.conf
    install -m 0644 ${SCENICPARK_RAUC_KEYRING} ${D}${sysconfdir}/rauc/ca.cert.pem
}

# Not meta-rauc's /usr/lib/rauc: the keyring path in system.conf is /etc/rauc.
# nooelint: oelint.vars.noncoreoverride, oelint.var.filesoverride - the appliance's configuration
FILES:${PN} = "${sysconfdir}/rauc"
