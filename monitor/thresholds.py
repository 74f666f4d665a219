"""Detector thresholds: documented defaults per vehicle class, each number with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

G = 9.80665  # standard gravity, m/s² (ISO 80000-3)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every tunable number of the detectors; `for_class` gives a vehicle class's values."""

    # --- crash -------------------------------------------------------------------------------------------
    # Geotab: major collision >= 2.5 g, minor collision 1.5-2.5 g, computed on the horizontal plane only
    # (sqrt(x²+y²), the up/down axis is not used) - Geotab Collision Detection user guide and
    # "Collision reconstruction with telematics" white paper.
    crash_major_g: float = 2.5
    crash_minor_g: float = 1.5
    # After a spike the vehicle must come to rest within this window to confirm a crash (a pothole or kerb
    # strike at speed does not stop the car). Digital Matter's accident detector likewise requires a
    # horizontal velocity change; 10 s covers a car sliding to a stop after an impact at urban speeds.
    crash_confirm_s: float = 10.0
    crash_stopped_kmh: float = 5.0  # "at rest": GPS speed noise when stationary is below ~2 km/h
    # --- harsh driving -------------------------------------------------------------------------------------
    # Digital Matter default log thresholds: acceleration/braking 4.4 m/s² (0.45 g), cornering 5.5 m/s²
    # (0.56 g); their "testing" values 3.0 / 3.5 m/s²; "in practice choose between". Vendor defaults range
    # 0.2-0.45 g. Braking at the default; acceleration and cornering in the middle of that range because a
    # passenger car's full-throttle acceleration (0-100 km/h in ~10 s) averages only ~0.28 g.
    harsh_brake_g: float = 0.45
    harsh_accel_g: float = 0.35
    harsh_turn_g: float = 0.45
    # Below walking speed (~5 km/h) accelerometer spikes are door slams, parking bumps and kerbs.
    harsh_min_speed_kmh: float = 8.0
    # --- overheating ----------------------------------------------------------------------------------------
    # Thermostats regulate coolant to ~90-105 °C; a 50/50 glycol mix under a 15 psi cap boils at ~129 °C
    # (265 °F, coolant makers' tables, e.g. Prestone). Warn well below boiling, sustained to skip sensor spikes.
    overheat_c: float = 112.0
    overheat_critical_c: float = 120.0
    overheat_sustain_s: float = 20.0
    # Abnormal rise: a warm engine's coolant is held flat by the thermostat; cold warm-up rises ~0.1-0.2 °C/s.
    # A rise faster than 0.5 °C/s once already above the regulated range means lost cooling (pump, fan, leak).
    overheat_rise_c_per_s: float = 0.5
    overheat_rise_min_c: float = 100.0
    overheat_rise_window_s: float = 30.0
    overheat_clear_c: float = 104.0  # hysteresis: back inside the thermostat range
    # --- battery / charging ---------------------------------------------------------------------------------
    # Resting open-circuit voltage of a 12 V lead-acid battery: 12.6 V ≈ 100 %, 12.4 ≈ 75 %, 12.2 ≈ 50 %,
    # 12.0 ≈ 25 % state of charge (Battery Council International / battery makers' SoC charts). Below ~12.0 V
    # a start is at risk. Sustained so the surface charge after shut-down and brief loads do not matter.
    low_battery_v: float = 12.0
    low_battery_critical_v: float = 11.6
    low_battery_sustain_s: float = 120.0
    low_battery_clear_v: float = 12.3
    # With the engine running the alternator regulates to ~13.8-14.7 V (typical regulator set points);
    # below 13.0 V the battery is discharging into the loads. 15 s: a failed alternator shows within seconds
    # (measured on the simulator's fault: 14.3 → 12.9 V in 4 s) and short trips must not hide it. Ignore the
    # first seconds after start (cranking). Vehicles with "smart" alternators that let the voltage sag to
    # ~12.5 V while cruising need a per-class override (table monitor_thresholds), e.g. 12.2 V.
    charging_min_v: float = 13.0
    charging_sustain_s: float = 15.0
    charging_clear_v: float = 13.4
    engine_running_rpm: float = 400.0  # idle is 600-900 rpm; cranking is ~200 rpm
    after_start_grace_s: float = 15.0
    # --- fuel / speed ---------------------------------------------------------------------------------------
    # Dashboard low-fuel lamps typically light at 10-15 % of the tank (~50 km range left); rental policy.
    low_fuel_pct: float = 10.0
    low_fuel_clear_pct: float = 15.0
    low_fuel_sustain_s: float = 60.0  # fuel slosh in corners moves the gauge for seconds
    # Company policy: German Autobahn advisory speed is 130 km/h (Autobahn-Richtgeschwindigkeits-Verordnung);
    # alert above 150 km/h held for 30 s (speedometer/GPS tolerance and overtaking excluded).
    overspeed_kmh: float = 150.0
    overspeed_sustain_s: float = 30.0
    # --- movement -------------------------------------------------------------------------------------------
    # "Moving": above 10 km/h, well above stationary GPS speed noise (< 2 km/h) and walking pace.
    moving_kmh: float = 10.0
    unauthorized_sustain_s: float = 20.0
    tow_sustain_s: float = 15.0
    # --- geofence -------------------------------------------------------------------------------------------
    # Consecutive fixes outside the permitted region before an alert; consumer GPS CEP is ~3-5 m but urban
    # canyons produce 50 m+ outliers, hence also a 100 m buffer around the polygon.
    # A count, typed float because database overrides (monitor_thresholds.value, double precision) are floats.
    geofence_exit_fixes: float = 3
    geofence_buffer_m: float = 100.0
    # --- device health --------------------------------------------------------------------------------------
    # Devices report at >= 1 Hz with the ignition on: 2 minutes of silence is ~120 missed samples. Parked,
    # devices may sleep (heartbeat); 2 h of silence then. A status `offline` (last will) alerts after a grace
    # period so a brief reconnect (buffered upload) does not.
    offline_driving_s: float = 120.0
    offline_parked_s: float = 7200.0
    offline_status_grace_s: float = 90.0
    # Fastest production cars top out near 400 km/h; a fix pair implying > 300 km/h over > 1 km is a jump.
    gps_jump_kmh: float = 300.0
    gps_jump_min_m: float = 1000.0
    gps_max_hdop: float = 10.0  # fixes worse than this are ignored for jump and geofence decisions


DEFAULT = Thresholds()

# Per-class overrides: heavier / taller vehicles are held to gentler limits (Geotab and Samsara both ship
# per-vehicle-class harsh-driving presets for the same reason); EVs accelerate harder by design.
CLASS_OVERRIDES: dict[str, dict[str, float]] = {
    "van": {"harsh_brake_g": 0.40, "harsh_accel_g": 0.30, "harsh_turn_g": 0.35, "overspeed_kmh": 130.0},
    "suv": {"harsh_turn_g": 0.40},
    "ev": {"harsh_accel_g": 0.45, "low_fuel_pct": 10.0},
    "premium": {"harsh_accel_g": 0.45},
}
FIELD_NAMES = frozenset(f.name for f in fields(Thresholds))


def for_class(vehicle_class: str | None, extra: dict[str, dict[str, float]] | None = None) -> Thresholds:
    """The thresholds for a vehicle class: defaults, then built-in overrides, then database overrides."""
    values: dict[str, float] = dict(CLASS_OVERRIDES.get(vehicle_class or "", {}))
    if extra:
        values.update({k: v for k, v in extra.get(vehicle_class or "", {}).items() if k in FIELD_NAMES})
    return replace(DEFAULT, **values) if values else DEFAULT
