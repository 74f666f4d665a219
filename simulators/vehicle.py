"""Vehicle physics: driving along routes, powertrain, thermal, fuel and electrical signals, all deterministic."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.city import STATION_BY_CODE, STATIONS, Route, routes, to_latlon, to_xy
from simulators.fleet_spec import VehicleSpec

G = 9.80665  # m/s² (ISO 80000-3 standard gravity)
PHYSICS_DT_MAX_S = 0.5  # physics sub-step; samples report the peak acceleration over their sub-steps

# Driving behaviour. Everyday drivers accelerate at ~0.1-0.15 g and brake at ~0.15-0.2 g (Bosetti et al. 2014;
# UK Highway Code stopping distances assume ~0.67 g only for emergency stops), so normal driving stays well
# below the 0.35-0.45 g harsh-driving thresholds vendors ship.
PLAN_BRAKE_MS2 = 1.6  # deceleration a driver plans with when approaching a stop or a bend
MAX_NORMAL_BRAKE_MS2 = 2.6  # never exceeded in normal driving (0.27 g)
MAX_YAW_RATE = 0.6  # rad/s (≈ 35 °/s, a tight low-speed turn)
LATERAL_MS2 = 1.5  # comfortable lateral acceleration (≈ 0.15 g), as in city.COMFORT_LATERAL_MS2
STOP_MARGIN_M = 2.0

# Powertrain of a generic 1.5 l petrol compact: 6-speed gearbox, 3.9 final drive, 205/55 R16 tyres (r ≈ 0.31 m).
GEAR_RATIOS = (3.6, 2.1, 1.4, 1.0, 0.8, 0.65)
FINAL_DRIVE = 3.9
WHEEL_RADIUS_M = 0.31
RPM_PER_MS = 60.0 / (2 * math.pi * WHEEL_RADIUS_M) * FINAL_DRIVE  # engine rpm per (m/s) at ratio 1.0
IDLE_RPM = 750.0
COLD_IDLE_RPM = 950.0  # fast idle until the coolant passes COLD_ENGINE_C
COLD_ENGINE_C = 40.0
UPSHIFT_RPM = 2300.0
DOWNSHIFT_RPM = 1100.0
MAX_RPM = 6200.0
RATED_POWER_RPM = 6000.0
AIR_DENSITY = 1.2  # kg/m³
ROLLING_RESISTANCE = 0.012

# Thermal: thermostats open at ~88-92 °C; coolant warms at ~0.1-0.2 °C/s from a cold start (≈ 8-12 min to
# operating temperature); a parked engine cools toward ambient with a time constant of ~25 min.
THERMOSTAT_C = 90.0
AMBIENT_C = 12.0  # Berlin annual mean is ~10 °C
PARKED_COOL_TAU_S = 1500.0
OVERHEAT_MAX_C = 130.0  # a pressurised 50/50 glycol system boils near 129 °C; the sensor saturates there

# Electrical: alternator regulation ~13.9-14.4 V; resting 12.4-12.7 V for a healthy battery (BCI SoC charts).
CHARGING_V = 14.2
RESTING_V = 12.6
FAILING_RESTING_V = 11.4
CHARGE_FAULT_V = 12.1
SURFACE_CHARGE_V = 0.3  # extra volts just after shut-down, decaying over ~20 min
SURFACE_CHARGE_TAU_S = 1200.0

# Fuel: ~0.8 l/h at idle; ~0.42 l per kWh of road-load work (part-load petrol BSFC ≈ 280 g/kWh, 0.75 kg/l,
# ~85 % drivetrain efficiency) — gives the 6-8 l/100 km city figures of these cars.
IDLE_FUEL_LPH = 0.8
FUEL_L_PER_KWH = 0.42
REFUEL_BELOW_PCT = 20.0

PARKED, STARTING, DRIVING, ARRIVED, STOPPED, TOWING = range(6)
MODE_NAMES = ("parked", "starting", "driving", "arrived", "stopped", "towing")


@dataclass(slots=True)
class Snapshot:
    """The vehicle's signals at one instant, as a device's sensors would read them (noise included)."""

    t: float
    lat: float
    lon: float
    speed_kmh: float
    heading_deg: float
    alt_m: float
    hdop: float
    sats: int
    odometer_km: float
    engine_hours: float
    rpm: float
    coolant_c: float
    engine_load_pct: float
    throttle_pct: float
    fuel_pct: float
    battery_v: float
    ignition: bool
    engine_on: bool
    run_time_s: float
    ambient_c: float
    accel_x: float
    accel_y: float
    accel_z: float
    dtc: tuple[str, ...]
    moving: bool


class Vehicle:
    """One car: a mode machine (parked → starting → driving → arrived → parked) plus continuous signals."""

    def __init__(self, spec: VehicleSpec, rng: random.Random, t0: float) -> None:
        self.spec = spec
        self.rng = rng
        self.t = t0
        self.routes = routes()
        # driver and car individuality
        self.speed_factor = rng.uniform(0.92, 1.06)
        self.accel_ms2 = rng.uniform(0.9, 1.5)
        self.thermostat_c = THERMOSTAT_C + rng.uniform(-2.0, 2.0)
        self.charging_v = CHARGING_V + rng.uniform(-0.2, 0.15)
        self.resting_v = RESTING_V + rng.uniform(-0.12, 0.08)
        self.consumption_factor = rng.uniform(0.95, 1.1)
        self.alt_base = rng.uniform(32.0, 48.0)  # Berlin lies 30-60 m above sea level
        # state
        self.station = spec.home_station
        x, y = _station_xy(self.station)
        self.x, self.y = x, y
        self.heading = rng.uniform(0.0, 360.0)
        self.mode = PARKED
        self.mode_until = t0 + rng.uniform(2.0, 240.0)  # first departures spread over four minutes
        self.route: Route | None = None
        self.s = 0.0
        self.k = 0
        self.v = 0.0
        self.a = 0.0
        self.hold_until = 0.0
        self.waits: dict[int, float] = {}
        self.passed_stop = 0
        self.slow_until = 0.0
        self.slow_v = 0.0
        self.ignition = False
        self.engine_on = False
        self.engine_start_t = t0
        self.gear = 0
        self.rpm = 0.0
        self.load = 0.0
        self.throttle = 0.0
        self.coolant = AMBIENT_C + rng.uniform(-1.0, 3.0)
        self.fuel_l = spec.tank_l * rng.uniform(0.35, 0.95)
        self.battery_v = self.resting_v
        self.odometer_km = rng.uniform(3000.0, 90000.0)
        self.engine_hours = self.odometer_km / rng.uniform(28.0, 40.0)  # average speed incl. idling
        self.parked_since = t0 - rng.uniform(0.0, 7200.0)
        # peak accelerations since the last sample (g, signed by the larger magnitude)
        self.px = 0.0
        self.py = 0.0
        self.spike: tuple[float, float, float] | None = None
        self.events: list[tuple[float, str, dict]] = []  # (t, type, data) for the device to publish
        # fault flags (set by simulators.scenario)
        self.cooling_failed = False
        self.battery_failing = False
        self.charge_fault_since: float | None = None
        self.dtc: tuple[str, ...] = ()
        self.misfire = False
        self.hold_parked = False  # battery dead / kept parked by a fault
        self.forced_trip: str | None = (
            None  # destination forced by a fault (unauthorized trip, tow, overspeed)
        )
        self.overspeed_ms: float | None = None
        self.no_refuel = False
        self.fuel_leak_to_l: float | None = None
        self.maneuver: tuple[str, float, float] | None = None  # (kind, until, value)
        self.gps_offset: tuple[float, float] | None = None
        self.tow_ms = 0.0
        self.arrivals = 0

    # ---- mode machine -------------------------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance physics by dt seconds."""
        t = self.t + dt
        mode = self.mode
        if mode in (DRIVING, TOWING):
            self._drive(dt, t)
        elif mode == PARKED:
            if t >= self.mode_until and not self.hold_parked and (self.spec.rented or self.forced_trip):
                self._ignition_on(t)
                self.mode = STARTING
                self.mode_until = t + self.rng.uniform(4.0, 25.0)
        elif mode == STARTING:
            if t >= self.mode_until:
                self._begin_trip(t)
        elif mode == ARRIVED:
            if t >= self.mode_until:
                self._ignition_off(t)
                self._park(t)
        elif mode == STOPPED:
            self.v = 0.0
            self.a = 0.0
            if t >= self.mode_until:
                if not self.ignition:
                    self._ignition_on(t)
                elif not self.engine_on:
                    self._start_engine(t)
                self.mode = DRIVING
        if self.mode != DRIVING and self.mode != TOWING:
            self.a = 0.0
            self.v = 0.0
        self._powertrain(dt, t)
        self.t = t

    def _ignition_on(self, t: float) -> None:
        self.ignition = True
        self.events.append((t, "ignition_on", {}))
        self._start_engine(t)

    def _start_engine(self, t: float) -> None:
        self.engine_on = True
        self.engine_start_t = t

    def _ignition_off(self, t: float) -> None:
        if self.ignition:
            self.events.append((t, "ignition_off", {}))
        self.ignition = False
        self.engine_on = False

    def _park(self, t: float) -> None:
        self.mode = PARKED
        self.parked_since = t
        self.v = 0.0
        self.gear = 0
        self.mode_until = t + self.rng.uniform(120.0, 1200.0)
        self.arrivals += 1
        if not self.no_refuel and self.fuel_l < self.spec.tank_l * REFUEL_BELOW_PCT / 100:
            self.fuel_l = self.spec.tank_l * self.rng.uniform(0.9, 0.98)

    def _begin_trip(self, t: float, *, tow: bool = False) -> None:
        dest = self.forced_trip
        if not dest or dest == self.station:
            others = [s.code for s in STATIONS if s.code != self.station]
            dest = others[self.rng.randrange(len(others))]
        self.route = self.routes[(self.station, dest)]
        self.s = 0.0
        self.k = 0
        self.passed_stop = 0
        self.hold_until = 0.0
        # traffic lights on this trip: ~45 % red on arrival, 10-45 s left to wait (Berlin cycles are 60-90 s)
        self.waits = {
            i: self.rng.uniform(10.0, 45.0)
            for i, sig in enumerate(self.route.signal)
            if sig and self.rng.random() < 0.45
        }
        self.mode = TOWING if tow else DRIVING
        self.tow_ms = self.rng.uniform(40.0, 58.0) / 3.6 if tow else 0.0

    def start_tow(self, t: float) -> None:
        """A tow truck lifts the parked car and takes it to another station (ignition stays off)."""
        self._begin_trip(t, tow=True)

    def _arrive(self, t: float) -> None:
        assert self.route is not None
        self.station = self.route.end
        self.x, self.y = _station_xy(self.station)
        self.v = 0.0
        self.forced_trip = None
        if self.mode == TOWING:
            self.route = None
            self._park(t)
            return
        self.route = None
        self.mode = ARRIVED
        self.mode_until = t + self.rng.uniform(3.0, 15.0)

    # ---- driving --------------------------------------------------------------------------------------------------

    def _drive(self, dt: float, t: float) -> None:
        r = self.route
        assert r is not None
        v = self.v
        if self.hold_until > t:  # waiting at a red light
            self.a = 0.0
            self.v = 0.0
            return
        s = self.s
        cum = r.cum
        n = len(cum)
        k = self.k
        while k < n - 2 and cum[k + 1] <= s:
            k += 1
        self.k = k
        limit = r.seg_limit[k] * self.speed_factor
        if self.mode == TOWING:
            limit = min(limit, self.tow_ms)
        elif self.overspeed_ms is not None and r.seg_limit[k] >= 79.0 / 3.6:
            limit = self.overspeed_ms
        if self.slow_until > t:
            limit = min(limit, self.slow_v)
        elif self.rng.random() < dt * v / 2500.0 * (0.3 if r.seg_limit[k] > 70 / 3.6 else 1.0):
            # congestion: roughly once per 2.5 km in town, slow to walking/crawling pace for a while
            self.slow_until = t + self.rng.uniform(10.0, 45.0)
            self.slow_v = self.rng.uniform(8.0, 25.0) / 3.6
        a = (limit - v) / 2.0
        if a > self.accel_ms2:
            a = self.accel_ms2
        elif a < -1.5:
            a = -1.5
        # constraints ahead: bends, red lights and the destination
        horizon = v * v / (2 * PLAN_BRAKE_MS2) + 40.0
        waits = self.waits
        corner = r.corner
        stop_j = -1
        j = k + 1
        while j < n:
            d = cum[j] - s
            if d > horizon and stop_j >= 0:
                break
            c = corner[j]
            if j > self.passed_stop and j in waits:
                c = 0.0
            elif self.overspeed_ms is not None and c > 60 / 3.6:
                c = math.inf  # a speeding driver takes motorway bends at full speed
            if c == 0.0 and stop_j < 0:
                stop_j = j
            if d <= horizon and v > c:
                dd = d - (STOP_MARGIN_M if c == 0.0 else 0.0)
                need = (v * v - c * c) / (2.0 * max(dd, 0.3))
                if need >= 0.85 * PLAN_BRAKE_MS2 and -need < a:
                    a = -need
            if d > horizon:
                break
            j += 1
        if a < -MAX_NORMAL_BRAKE_MS2:
            a = -MAX_NORMAL_BRAKE_MS2
        m = self.maneuver
        yaw_override = None
        if m is not None:
            kind, until, value = m
            if t > until or (kind == "harsh_brake" and v <= 3.0):
                self.maneuver = None
            elif kind in ("harsh_brake", "harsh_accel"):
                a = value
            elif kind == "harsh_turn":
                yaw_override = value / max(v, 3.0) * (1.0 if until - t > 1.2 else -1.0)
        v_new = v + a * dt
        if v_new < 0.0:
            v_new = 0.0
        ds = (v + v_new) * 0.5 * dt
        if stop_j >= 0:
            d_stop = cum[stop_j] - s
            if ds >= d_stop or (v_new < 0.6 and d_stop < 6.0):
                ds = max(0.0, d_stop)
                v_new = 0.0
                # the last metres are rolled out gently; the step's mean deceleration is not what the car felt
                a_felt = -min(v * v / (2.0 * max(ds, 0.5)), MAX_NORMAL_BRAKE_MS2)
                if stop_j == n - 1:
                    self._advance(s + ds, dt, v, 0.0, yaw_override, a_felt)
                    self._arrive(t)
                    return
                self.hold_until = t + waits[stop_j]
                self.passed_stop = stop_j
                self._advance(s + ds, dt, v, 0.0, yaw_override, a_felt)
                return
        self._advance(s + ds, dt, v, v_new, yaw_override)

    def _advance(
        self,
        s: float,
        dt: float,
        v0: float,
        v1: float,
        yaw_override: float | None,
        a_felt: float | None = None,
    ) -> None:
        r = self.route
        assert r is not None
        self.s = s
        k = self.k
        cum = r.cum
        while k < len(cum) - 2 and cum[k + 1] <= s:
            k += 1
        self.k = k
        seg = cum[k + 1] - cum[k]
        f = (s - cum[k]) / seg if seg > 0 else 0.0
        if f > 1.0:
            f = 1.0
        self.x = r.xs[k] + (r.xs[k + 1] - r.xs[k]) * f
        self.y = r.ys[k] + (r.ys[k + 1] - r.ys[k]) * f
        a = (v1 - v0) / dt if a_felt is None else a_felt
        self.a = a
        self.v = v1
        v = 0.5 * (v0 + v1)
        # heading follows the road, turning no faster than a comfortable lateral acceleration allows
        if yaw_override is not None:
            dh = math.degrees(yaw_override) * dt
        else:
            diff = (r.seg_heading[k] - self.heading + 180.0) % 360.0 - 180.0
            max_rate = LATERAL_MS2 / v if v > LATERAL_MS2 / MAX_YAW_RATE else MAX_YAW_RATE
            lim = math.degrees(max_rate) * dt
            dh = diff if -lim <= diff <= lim else (lim if diff > 0 else -lim)
        self.heading = (self.heading + dh) % 360.0
        lat_g = -v * math.radians(dh) / dt / G  # right turn (heading increasing) pushes to the right (-y)
        ax = a / G
        if abs(ax) > abs(self.px):
            self.px = ax
        if abs(lat_g) > abs(self.py):
            self.py = lat_g
        self.odometer_km += (v0 + v1) * 0.5 * dt / 1000.0

    # ---- powertrain and body ----------------------------------------------------------------------------------------

    def _powertrain(self, dt: float, t: float) -> None:
        spec = self.spec
        v = self.v
        if self.engine_on:
            cold = self.coolant < COLD_ENGINE_C
            idle = COLD_IDLE_RPM if cold else IDLE_RPM
            if v < 0.5:
                self.gear = 0
                rpm = idle
            else:
                g = max(self.gear, 1)
                up = UPSHIFT_RPM + (1800.0 if self.a > 2.0 else 0.0)
                while g < len(GEAR_RATIOS) and v * RPM_PER_MS * GEAR_RATIOS[g - 1] > up:
                    g += 1
                while g > 1 and v * RPM_PER_MS * GEAR_RATIOS[g - 1] < DOWNSHIFT_RPM:
                    g -= 1
                self.gear = g
                rpm = v * RPM_PER_MS * GEAR_RATIOS[g - 1]
                if g == 1 and rpm < idle + 400.0:
                    rpm = idle + 400.0 * min(
                        1.0, max(self.a, 0.0) + 0.3
                    )  # clutch slipping while pulling away
            rpm = min(rpm, MAX_RPM)
            if self.misfire:
                rpm += self.rng.gauss(0.0, 70.0)  # a misfiring cylinder makes the crank speed uneven
            self.rpm = rpm
            # road-load power: inertia + aerodynamic drag + rolling resistance
            power_w = spec.mass_kg * self.a * v + 0.5 * AIR_DENSITY * spec.cda_m2 * v**3
            power_w += ROLLING_RESISTANCE * spec.mass_kg * G * v
            avail_w = spec.max_power_kw * 1000.0 * min(1.0, rpm / RATED_POWER_RPM)
            load = 18.0 + 82.0 * max(power_w, 0.0) / avail_w if power_w > -500.0 or v < 0.5 else 8.0
            self.load = min(load, 100.0)
            self.throttle = 0.0 if load <= 18.0 else min(100.0, (load - 18.0) * 1.1)
            # fuel
            fuel_lph = IDLE_FUEL_LPH + FUEL_L_PER_KWH * max(power_w, 0.0) / 1000.0
            self.fuel_l -= fuel_lph * self.consumption_factor * dt / 3600.0
            # coolant
            heat = 0.02 + 0.004 * self.load
            if self.cooling_failed:
                self.coolant = min(OVERHEAT_MAX_C, self.coolant + (heat + 0.08) * dt)
            else:
                c = self.coolant + heat * dt
                if c > self.thermostat_c:
                    c = self.thermostat_c + (c - self.thermostat_c) * math.exp(-0.2 * dt)
                self.coolant = c
            # alternator
            if self.charge_fault_since is not None:
                target = max(11.7, CHARGE_FAULT_V - 0.0003 * (t - self.charge_fault_since))
            else:
                target = self.charging_v
            self.battery_v += (target - self.battery_v) * (1.0 - math.exp(-dt / 5.0))
            self.engine_hours += dt / 3600.0
        else:
            self.rpm = 0.0
            self.gear = 0
            self.load = 0.0
            self.throttle = 0.0
            self.coolant += (AMBIENT_C - self.coolant) * (1.0 - math.exp(-dt / PARKED_COOL_TAU_S))
            if self.battery_failing:
                target, tau = FAILING_RESTING_V, 300.0
            else:
                since = t - self.parked_since
                target = self.resting_v + SURFACE_CHARGE_V * math.exp(-since / SURFACE_CHARGE_TAU_S)
                tau = 20.0  # the charging voltage collapses within a minute of shut-down
            self.battery_v += (target - self.battery_v) * (1.0 - math.exp(-dt / tau))
        if self.fuel_leak_to_l is not None and self.fuel_l > self.fuel_leak_to_l:
            self.fuel_l = max(self.fuel_leak_to_l, self.fuel_l - spec.tank_l * 0.01 * dt)
        if self.fuel_l < 0.0:
            self.fuel_l = 0.0

    # ---- sampling ---------------------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Read the sensors (with noise) and reset the per-sample acceleration peaks."""
        rng = self.rng
        r = rng.random

        def gauss(mu: float, sigma: float) -> float:
            # triangular noise with unit variance from two uniforms: ~10x cheaper than random.gauss
            return mu + (r() + r() - 1.0) * 2.449489742783178 * sigma

        t = self.t
        lat, lon = to_latlon(self.x, self.y)
        # GNSS: consumer receivers are good to ~2-3 m CEP in the open (u-blox M8 datasheet: 2.5 m CEP)
        lat += gauss(0.0, 1.5e-5)
        lon += gauss(0.0, 2.4e-5)
        if self.gps_offset is not None:
            lat += self.gps_offset[0]
            lon += self.gps_offset[1]
            self.gps_offset = None
        moving = self.v > 0.3
        speed_kmh = self.v * 3.6 + (gauss(0.0, 0.3) if moving else 0.0)
        if speed_kmh < 0.0:
            speed_kmh = 0.0
        ax = self.px + gauss(0.0, 0.01)
        ay = self.py + gauss(0.0, 0.01)
        # gravity plus road roughness that grows with speed
        az = 1.0 + gauss(0.0, 0.01 + 0.0006 * self.v * 3.6)
        if self.spike is not None:
            ax, ay, az = self.spike
            self.spike = None
        self.px = self.py = 0.0
        on = self.engine_on
        return Snapshot(
            t=t,
            lat=lat,
            lon=lon,
            speed_kmh=speed_kmh,
            heading_deg=self.heading,
            alt_m=self.alt_base + gauss(0.0, 1.5),
            hdop=round(rng.uniform(0.7, 1.4), 2),
            sats=rng.randint(8, 14),
            odometer_km=self.odometer_km,
            engine_hours=self.engine_hours,
            rpm=max(0.0, self.rpm + (gauss(0.0, 8.0) if on else 0.0)),
            coolant_c=self.coolant + gauss(0.0, 0.2),
            engine_load_pct=min(100.0, max(0.0, self.load + (gauss(0.0, 1.0) if on else 0.0))),
            throttle_pct=self.throttle,
            fuel_pct=min(100.0, max(0.0, self.fuel_l / self.spec.tank_l * 100.0 + gauss(0.0, 0.1))),
            battery_v=self.battery_v + gauss(0.0, 0.02),
            ignition=self.ignition,
            engine_on=on,
            run_time_s=(t - self.engine_start_t) if on else 0.0,
            ambient_c=AMBIENT_C,
            accel_x=ax,
            accel_y=ay,
            accel_z=az,
            dtc=self.dtc,
            moving=moving,
        )


def _station_xy(code: str) -> tuple[float, float]:
    st = STATION_BY_CODE[code]
    return to_xy(st.lat, st.lon)
