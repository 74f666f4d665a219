#!/usr/bin/env bash
# Build and install the Apache-2 edition of TimescaleDB from Debian's source package
# against the locally installed PostgreSQL server, then preload it. Idempotent.
set -euo pipefail
PG_CONFIG=${PG_CONFIG:-pg_config}
PGVER=$($PG_CONFIG --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
EXTDIR=$($PG_CONFIG --sharedir)/extension
CONF_DIR=/etc/postgresql/$PGVER/main/conf.d

if ! ls "$EXTDIR"/timescaledb.control >/dev/null 2>&1; then
  echo "[timescaledb] building from Debian source package (trixie) for PostgreSQL $PGVER"
  export DEBIAN_FRONTEND=noninteractive
  if [ ! -f /etc/apt/sources.list.d/fleet-trixie-src.sources ]; then
    cat > /etc/apt/sources.list.d/fleet-trixie-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt-get update -qq
  apt-get install -y -qq "postgresql-server-dev-$PGVER" cmake dpkg-dev libssl-dev >/dev/null
  work=$(mktemp -d)
  (cd "$work" && apt-get source -qq --download-only timescaledb >/dev/null && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  cd "$work/src"
  ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
     -DSEND_TELEMETRY_DEFAULT=OFF -DPG_CONFIG="$(command -v $PG_CONFIG)" >/dev/null
  make -C build -j"$(nproc)" >/dev/null
  make -C build install >/dev/null
  rm -rf "$work"
fi

mkdir -p "$CONF_DIR"
if ! grep -qs "timescaledb" "$CONF_DIR/timescaledb.conf"; then
  cat > "$CONF_DIR/timescaledb.conf" <<CONF
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
CONF
  echo "[timescaledb] preload configured; restarting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main restart
fi
echo "[timescaledb] ready"
