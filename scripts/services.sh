#!/usr/bin/env bash
# Make sure the services the test suite needs are installed and running on this machine:
# Mosquitto, PostgreSQL with TimescaleDB preloaded, docker-compose (only to validate the compose file), and
# Chromium with a Chinese font for the console's browser tests (Debian's build: Playwright drives it by path).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)  # the console's browser tests
# Documents: a CJK font so Chinese renders in PDFs (fleetcore/documents.py), poppler to render pages in tests.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[services] installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "[services] starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
fi
$SUDO bash "$here/install-timescaledb.sh"
# The suite runs two workers, each test with its own API pool, ingest writers and monitor: room for them.
PGVER=$(ls /etc/postgresql | sort -V | tail -1)
if ! grep -qs "max_connections = 300" "/etc/postgresql/$PGVER/main/conf.d/fleet-tests.conf"; then
  echo "max_connections = 300" | $SUDO tee "/etc/postgresql/$PGVER/main/conf.d/fleet-tests.conf" >/dev/null
  echo "[services] max_connections = 300; restarting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main restart
fi
for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done

if ! port_open 1883; then
  echo "[services] starting Mosquitto"
  $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
  for _ in $(seq 1 20); do port_open 1883 && break; sleep 0.5; done
fi
port_open 1883 || { echo "[services] Mosquitto is not listening on 1883" >&2; exit 1; }
port_open 5432 || { echo "[services] PostgreSQL is not listening on 5432" >&2; exit 1; }
echo "[services] PostgreSQL (TimescaleDB) and Mosquitto are up"
