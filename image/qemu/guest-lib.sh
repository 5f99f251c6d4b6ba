# What the QEMU guest's test scripts share (guest-kiosk-test, guest-test,
# guest-update-test source it from /usr/local/lib/scenicpark/guest-lib.sh).
# Lines start with GUEST: so the host finds them on the serial console.
say() { echo "GUEST: $*" > /dev/ttyS0; }
# wait_until SECONDS CMD…: polls CMD POLL_PER_S times a second (default 5).
# CMD is run at each poll: a condition with $(…) goes in a function.
wait_until() {
    local per_s=${POLL_PER_S:-5}
    local n=$(( $1 * per_s )); shift
    while ! "$@" 2>/dev/null; do
        n=$((n - 1)); [ $n -gt 0 ] || return 1
        sleep "0.$(printf %03d $(( 1000 / per_s )))"
    done
}
json_num() { # KEY: the first number after "KEY": in stdin
    sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -1
}
# central-sim's control panel, without curl: METHOD PATH [BODY]; on
# ADMIN_PORT (default 18081: scenicpark-central-sim.service's).
admin() {
    local body=${3:-}
    exec 4<>"/dev/tcp/127.0.0.1/${ADMIN_PORT:-18081}" || return 1
    printf '%s %s HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' \
        "$1" "$2" "${#body}" "$body" >&4
    cat <&4
    exec 4<&-
}
active() { [ "$(systemctl show "$1" -p ActiveState --value)" = active ]; } # UNIT
online() { gatectl status | grep -q '^  central *online'; }
# The kiosk app's start, as the host's run script looks for it.
say_kiosk_ready() {
    say "kiosk ready $(( $(systemctl show kiosk -p ActiveEnterTimestampMonotonic --value) / 1000 )) ms after the kernel started; $(journalctl -b -u kiosk -o cat | grep -m1 'home screen shown')"
}
