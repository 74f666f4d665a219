"""Device message contract v1: topics, fields and their valid ranges (see docs/device-guide.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTRACT_VERSION = "v1"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Topic kinds: the last topic level.
TELEMETRY = "telemetry"
EVENT = "event"
OBD = "obd"
NMEA = "nmea"
STATUS = "status"
TOPIC_KINDS = (TELEMETRY, EVENT, OBD, NMEA, STATUS)
# Kinds that carry samples stored as readings.
READING_KINDS = (TELEMETRY, OBD, NMEA)

EVENT_TYPES = frozenset(
    {
        "crash",
        "harsh_brake",
        "harsh_accel",
        "harsh_turn",
        "ignition_on",
        "ignition_off",
        "tow",
        "power_cut",
        "sos",
        "door_open",
        # Terminal-side alarms of JT/T 808 (0x0200 alarm bits 1 and 2) and Teltonika (AVL 255): the unit's own
        # judgement against its configured limit, kept as events; the monitor's overspeed alert stays speed-based.
        "overspeed",
        "fatigue",
    }
)

# Per-message limits (defaults of FLEET_INGEST_MAX_PAYLOAD_BYTES / FLEET_INGEST_MAX_SAMPLES): a bigger payload is
# refused as too_large without being parsed, more samples (array elements, NMEA fixes) as too_many_samples. The
# device guide asks for ≤ ~500 samples (≈ 100 KB) per upload; AWS IoT Core caps messages at 128 KB.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_SAMPLES_PER_MESSAGE = 2000
# What a rejection keeps of a too_large / too_many_samples payload: its head.
REJECTED_HEAD_BYTES = 1024
HEAD_ONLY_REASONS = frozenset({"too_large", "too_many_samples"})

# Samples may not be stamped more than this far in the future (device clock drift allowance).
MAX_FUTURE_SKEW_S = 300
MAX_SPEED_KMH = 400.0
DTC_RE = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A numeric telemetry field and its physically plausible range."""

    name: str
    lo: float
    hi: float
    integer: bool = False


# Ranges: WGS84 bounds; speed per the contract; OBD fields bounded by what their SAE J1979 PID can encode.
NUMERIC_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("lat", -90.0, 90.0),
    FieldSpec("lon", -180.0, 180.0),
    FieldSpec("speed_kmh", 0.0, MAX_SPEED_KMH),
    FieldSpec("heading_deg", 0.0, 360.0),
    FieldSpec("alt_m", -500.0, 9000.0),
    FieldSpec("hdop", 0.0, 99.99),
    FieldSpec("sats", 0, 64, integer=True),
    FieldSpec("odometer_km", 0.0, 429496729.5),  # PID A6: 4 bytes / 10
    FieldSpec("engine_hours", 0.0, 1_000_000.0),
    FieldSpec("rpm", 0.0, 16383.75),  # PID 0C: 2 bytes / 4
    FieldSpec("coolant_c", -40.0, 215.0),  # PID 05: A - 40
    FieldSpec("engine_load_pct", 0.0, 100.0),  # PID 04
    FieldSpec("throttle_pct", 0.0, 100.0),  # PID 11
    FieldSpec("fuel_pct", 0.0, 100.0),  # PID 2F
    FieldSpec("battery_v", 0.0, 65.535),  # PID 42: 2 bytes / 1000
)
NUMERIC_BY_NAME = {f.name: f for f in NUMERIC_FIELDS}
ACCEL_LIMIT_G = 16.0  # typical MEMS accelerometer full scale (±16 g)

# Column order of a stored reading; parser output and the COPY writer share it.
READING_COLUMNS: tuple[str, ...] = (
    "ts",
    "device_id",
    "kind",
    "seq",
    "lat",
    "lon",
    "speed_kmh",
    "heading_deg",
    "alt_m",
    "hdop",
    "sats",
    "odometer_km",
    "engine_hours",
    "rpm",
    "coolant_c",
    "engine_load_pct",
    "throttle_pct",
    "fuel_pct",
    "battery_v",
    "ignition",
    "accel_x",
    "accel_y",
    "accel_z",
    "dtc",
    "obd_extra",  # jsonb: OBD values without a column, pending/permanent DTCs, VIN, raw answers (fleetcore.protocol.obd)
)
# Fields a sample may carry (the JSON names); accel_g maps to accel_x/y/z.
SAMPLE_FIELDS = tuple(f.name for f in NUMERIC_FIELDS) + ("ignition", "accel_g", "dtc")


def topic_for(root: str, device_id: str, kind: str) -> str:
    """The topic a device publishes `kind` messages on."""
    return f"{root}/devices/{device_id}/{kind}"


def subscription(root: str, kind: str = "+") -> str:
    """Wildcard subscription for one kind (or all kinds) of every device."""
    return f"{root}/devices/+/{kind}"


def parse_topic(root: str, topic: str) -> tuple[str, str] | None:
    """Split a device topic into (device_id, kind); None when it is not a contract topic."""
    prefix = root + "/devices/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix) :]
    device_id, sep, kind = rest.partition("/")
    if not sep or kind not in TOPIC_KINDS or not DEVICE_ID_RE.match(device_id):
        return None
    return device_id, kind
