"""The simulated fleet's identities: which car, make and model each index is, its device and its static physics."""

from __future__ import annotations

from dataclasses import dataclass

from fleetcore.protocol.vin import with_check_digit
from simulators.city import STATIONS

# name, make, model, class, mass kg, drag area CdA m², tank l, max power kW
MODELS = (
    ("polo", "Volkswagen", "Polo", "economy", 1150.0, 0.62, 40.0, 70.0),
    ("golf", "Volkswagen", "Golf", "compact", 1300.0, 0.65, 50.0, 110.0),
    ("octavia", "Skoda", "Octavia", "midsize", 1400.0, 0.66, 50.0, 110.0),
    ("passat", "Volkswagen", "Passat", "fullsize", 1550.0, 0.70, 66.0, 140.0),
    ("tiguan", "Volkswagen", "Tiguan", "suv", 1650.0, 0.90, 58.0, 140.0),
    ("transporter", "Volkswagen", "Transporter", "van", 2000.0, 1.30, 70.0, 110.0),
    ("eclass", "Mercedes-Benz", "E 200", "premium", 1700.0, 0.66, 66.0, 150.0),
)
# World manufacturer identifiers (ISO 3780) and plant codes for realistic VINs.
WMI = {"Volkswagen": "WVW", "Skoda": "TMB", "Mercedes-Benz": "W1K"}
# Weighted mix of a city rental fleet: mostly economy/compact.
MODEL_MIX = (0, 1, 1, 1, 2, 2, 3, 4, 4, 5, 6, 1, 0, 2, 1, 4, 1, 0, 2, 6)
# Device mix per 20 vehicles: 12 JSON telematics units, 5 OBD dongles (+ their GPS as NMEA), 3 plain trackers.
PROTOCOL_MIX = ("json",) * 12 + ("obd",) * 5 + ("nmea",) * 3
# One vehicle in five is not rented out (registry status `available`) and stays parked at its station.
AVAILABLE_EVERY = 5
_VIN_YEAR = {2021: "M", 2022: "N", 2023: "P", 2024: "R", 2025: "S"}


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    """Identity and static properties of one simulated vehicle (depends only on its index)."""

    index: int
    device_id: str
    vin: str
    plate: str
    make: str
    model: str
    year: int
    vehicle_class: str
    protocol: str
    home_station: str
    rented: bool  # False: registry status `available`; the car stays parked unless a fault moves it
    mass_kg: float
    cda_m2: float
    tank_l: float
    max_power_kw: float


def device_id_for(index: int) -> str:
    """Deterministic device id of the vehicle at `index` (0-based): sim-00001, sim-00002, ..."""
    return f"sim-{index + 1:05d}"


def make_spec(index: int, *, rented: bool | None = None) -> VehicleSpec:
    """The vehicle at `index`; identity does not depend on the seed, so one registry serves every run."""
    _, make, model, cls, mass, cda, tank, power = MODELS[MODEL_MIX[index % len(MODEL_MIX)]]
    year = 2021 + index % 5
    serial = f"{index + 1:06d}"
    vds = {"Volkswagen": "ZZZ1K", "Skoda": "ZZZNX", "Mercedes-Benz": "ZZZ21"}[make]
    plant = "W" if make != "Mercedes-Benz" else "A"
    vin = with_check_digit(WMI[make] + vds + "0" + _VIN_YEAR[year] + plant + serial)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    plate = f"B-S{letters[index // 9999 % len(letters)]} {index % 9999 + 1}"
    return VehicleSpec(
        index=index,
        device_id=device_id_for(index),
        vin=vin,
        plate=plate,
        make=make,
        model=model,
        year=year,
        vehicle_class=cls,
        protocol=PROTOCOL_MIX[index % len(PROTOCOL_MIX)],
        home_station=STATIONS[index % len(STATIONS)].code,
        rented=(index % AVAILABLE_EVERY != AVAILABLE_EVERY - 1) if rented is None else rented,
        mass_kg=mass,
        cda_m2=cda,
        tank_l=tank,
        max_power_kw=power,
    )
