#!/bin/sh
# Install cloudeye-agent: a dedicated user, the binary in /usr/local/bin, the config
# (0600, owned by that user), the state dir (0700) and a service for the init system found.
#
#   ./install.sh [--init systemd|sysv|openrc|busybox|cron|none] [--binary FILE] [--no-start]
#   ./install.sh --uninstall [--purge]     (--purge also removes config, state, logs, user)
#
# DESTDIR=/some/dir stages the files there without creating the user or starting anything.
set -eu

NAME=cloudeye-agent
USER_NAME=cloudeye-agent
HERE=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
BIN_DIR="$DESTDIR/usr/local/bin"
CONF_DIR="$DESTDIR/etc/cloudeye-agent"
STATE_DIR="$DESTDIR/var/lib/cloudeye-agent"
LOG_DIR="$DESTDIR/var/log/cloudeye-agent"

init=""
binary=""
action=install
purge=no
start=yes

die() {
    echo "install.sh: $*" >&2
    exit 1
}

say() {
    echo "install.sh: $*"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --init) [ $# -ge 2 ] || die "--init needs a value"; init=$2; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; shift ;;
        --uninstall) action=uninstall ;;
        --purge) purge=yes ;;
        --no-start) start=no ;;
        -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

staged() {
    [ -n "$DESTDIR" ]
}

detect_init() {
    if [ -d /run/systemd/system ]; then
        echo systemd
    elif [ -x /sbin/openrc-run ] || command -v openrc-run >/dev/null 2>&1; then
        echo openrc
    elif [ -f /etc/inittab ] && readlink /sbin/init 2>/dev/null | grep -q busybox; then
        echo busybox
    elif [ -d /etc/init.d ]; then
        echo sysv
    else
        echo cron
    fi
}

create_user() {
    staged && return 0
    id "$USER_NAME" >/dev/null 2>&1 && return 0
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /var/lib/cloudeye-agent \
            --shell "$nologin" --comment "cloudeye-agent" "$USER_NAME"
    elif command -v adduser >/dev/null 2>&1; then
        # BusyBox / Alpine
        addgroup -S "$USER_NAME" 2>/dev/null || true
        adduser -S -D -H -h /var/lib/cloudeye-agent -s "$nologin" -G "$USER_NAME" "$USER_NAME"
    else
        die "cannot create user $USER_NAME: neither useradd nor adduser found"
    fi
    say "created system user $USER_NAME"
}

owned() {
    # owned MODE PATH: chmod, and chown to the agent's user unless staging
    chmod "$1" "$2"
    staged || chown "$USER_NAME:$USER_NAME" "$2"
}

install_files() {
    [ -n "$binary" ] || binary="$HERE/$NAME"
    [ -f "$binary" ] || binary="$HERE/../target/release/$NAME"
    [ -f "$binary" ] || die "no binary found; pass --binary FILE"
    mkdir -p "$BIN_DIR" "$CONF_DIR" "$STATE_DIR" "$LOG_DIR"
    cp "$binary" "$BIN_DIR/$NAME.new"
    chmod 0755 "$BIN_DIR/$NAME.new"
    mv "$BIN_DIR/$NAME.new" "$BIN_DIR/$NAME"
    if [ -e "$CONF_DIR/config.json" ]; then
        say "keeping the existing $CONF_DIR/config.json"
    else
        cp "$HERE/config.example.json" "$CONF_DIR/config.json"
    fi
    owned 0600 "$CONF_DIR/config.json"
    owned 0700 "$STATE_DIR"
    owned 0750 "$LOG_DIR"
    cp "$HERE/config.example.json" "$CONF_DIR/config.example.json"
    chmod 0644 "$CONF_DIR/config.example.json"
    if [ -d "$DESTDIR/etc/logrotate.d" ]; then
        cp "$HERE/logrotate/$NAME" "$DESTDIR/etc/logrotate.d/$NAME"
        chmod 0644 "$DESTDIR/etc/logrotate.d/$NAME"
    fi
}

install_service() {
    case "$init" in
        systemd)
            mkdir -p "$DESTDIR/etc/systemd/system"
            cp "$HERE/$NAME.service" "$DESTDIR/etc/systemd/system/$NAME.service"
            chmod 0644 "$DESTDIR/etc/systemd/system/$NAME.service"
            if ! staged; then
                systemctl daemon-reload
                systemctl enable "$NAME"
                [ "$start" = yes ] && systemctl restart "$NAME"
            fi
            ;;
        sysv | openrc)
            mkdir -p "$DESTDIR/etc/init.d"
            src="$HERE/init.d/$NAME"
            [ "$init" = openrc ] && src="$HERE/openrc/$NAME"
            cp "$src" "$DESTDIR/etc/init.d/$NAME"
            chmod 0755 "$DESTDIR/etc/init.d/$NAME"
            if ! staged; then
                if [ "$init" = openrc ]; then
                    rc-update add "$NAME" default
                elif command -v update-rc.d >/dev/null 2>&1; then
                    update-rc.d "$NAME" defaults
                elif command -v chkconfig >/dev/null 2>&1; then
                    chkconfig --add "$NAME"
                fi
                [ "$start" = yes ] && /etc/init.d/$NAME restart
            fi
            ;;
        busybox)
            line=$(grep -v '^#' "$HERE/busybox-inittab.txt")
            mkdir -p "$DESTDIR/etc"
            touch "$DESTDIR/etc/inittab"
            grep -q "cloudeye-agent" "$DESTDIR/etc/inittab" || printf '%s\n' "$line" >>"$DESTDIR/etc/inittab"
            staged || { [ "$start" = yes ] && kill -HUP 1; }
            ;;
        cron)
            mkdir -p "$DESTDIR/etc/cron.d"
            cp "$HERE/cron.d/$NAME" "$DESTDIR/etc/cron.d/$NAME"
            chmod 0644 "$DESTDIR/etc/cron.d/$NAME"
            ;;
        none) ;;
        *) die "unknown init system '$init' (systemd, sysv, openrc, busybox, cron, none)" ;;
    esac
}

uninstall() {
    case "$init" in
        systemd)
            staged || systemctl disable --now "$NAME" 2>/dev/null || true
            rm -f "$DESTDIR/etc/systemd/system/$NAME.service"
            staged || systemctl daemon-reload
            ;;
        sysv | openrc)
            staged || "$DESTDIR/etc/init.d/$NAME" stop 2>/dev/null || true
            if ! staged; then
                if [ "$init" = openrc ]; then
                    rc-update del "$NAME" default 2>/dev/null || true
                elif command -v update-rc.d >/dev/null 2>&1; then
                    update-rc.d -f "$NAME" remove
                elif command -v chkconfig >/dev/null 2>&1; then
                    chkconfig --del "$NAME" || true
                fi
            fi
            rm -f "$DESTDIR/etc/init.d/$NAME"
            ;;
        busybox)
            if [ -f "$DESTDIR/etc/inittab" ]; then
                grep -v "cloudeye-agent" "$DESTDIR/etc/inittab" >"$DESTDIR/etc/inittab.new" || true
                mv "$DESTDIR/etc/inittab.new" "$DESTDIR/etc/inittab"
                staged || kill -HUP 1
            fi
            ;;
    esac
    rm -f "$DESTDIR/etc/cron.d/$NAME" "$DESTDIR/etc/logrotate.d/$NAME" "$BIN_DIR/$NAME"
    if [ "$purge" = yes ]; then
        rm -rf "$CONF_DIR" "$STATE_DIR" "$LOG_DIR"
        if ! staged && id "$USER_NAME" >/dev/null 2>&1; then
            if command -v userdel >/dev/null 2>&1; then userdel "$USER_NAME"; else deluser "$USER_NAME"; fi
        fi
        say "removed $NAME with its config, state, logs and user"
    else
        say "removed $NAME; kept $CONF_DIR and $STATE_DIR (use --purge to remove them)"
    fi
}

staged || [ "$(id -u)" -eq 0 ] || die "run as root (or set DESTDIR to stage the files)"
[ -n "$init" ] || init=$(detect_init)

if [ "$action" = uninstall ]; then
    uninstall
    exit 0
fi
create_user
install_files
install_service
say "installed $NAME for $init; edit $CONF_DIR/config.json, then run: $NAME check"
