"""`fleet simulate`: drive a simulated fleet in Berlin and publish its devices over MQTT."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fleetcore.db import connect
from fleetcore.errors import CliError
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings
from simulators import runner
from simulators.scenario import ScenarioError, load_scenario, random_scenario


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulated vehicles publishing over MQTT (FLEET_MQTT_URL, FLEET_TOPIC_ROOT)",
        description="Vehicles drive between Berlin rental stations; JSON, OBD-II and NMEA devices publish "
        "telemetry, events and status. Faults from --scenario; ground truth to --truth-out.",
    )
    p.add_argument("--vehicles", type=int, default=50, help="number of vehicles (default 50)")
    p.add_argument(
        "--rate", type=float, default=1.0, help="samples per second per driving vehicle (default 1)"
    )
    p.add_argument("--seed", type=int, default=1, help="random seed; same seed, same drive (default 1)")
    p.add_argument("--scenario", type=Path, help="fault scenario JSON (see docs/simulator.md)")
    p.add_argument("--random-faults", type=int, metavar="N", help="generate N random faults from the seed")
    p.add_argument(
        "--write-scenario", type=Path, metavar="FILE", help="write the (generated) scenario and exit"
    )
    p.add_argument("--duration", type=float, help="stop after this many simulated seconds")
    p.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    p.add_argument("--truth-out", type=Path, help="append ground-truth JSON lines here")
    p.add_argument("--register", action="store_true", help="register stations, vehicles and devices first")
    p.add_argument(
        "--connection",
        choices=("per-device", "shared"),
        default="per-device",
        help="one MQTT client per device (realistic, default) or one shared connection (load)",
    )
    p.add_argument(
        "--client-prefix", default="", help="prefix for MQTT client ids (to run several simulators)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="simulate this many seconds silently first (cars already out)",
    )
    p.add_argument(
        "--protocol",
        choices=("mqtt", "jt808"),
        default="mqtt",
        help="mqtt: devices speak the contract to the broker (default); jt808: JT/T 808 terminals speak TCP to "
        "the JT/T 808 gateway (`fleet gateway jt808`), which republishes into the contract",
    )
    p.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="the JT/T 808 gateway to connect to (default 127.0.0.1:FLEET_JT808_PORT)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="no broker: run --duration as fast as possible and print message counts (with --truth-out)",
    )
    p.set_defaults(func=cmd_simulate, register_fleet=None)


def cmd_simulate(args: argparse.Namespace) -> int:

    if args.vehicles < 1:
        raise CliError("--vehicles must be at least 1")
    if not 0.01 <= args.rate <= 50:
        raise CliError("--rate must be between 0.01 and 50 Hz")
    if args.speedup <= 0:
        raise CliError("--speedup must be positive")
    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    if args.random_faults:
        extra = random_scenario(
            vehicles=args.vehicles,
            seed=args.seed,
            duration_s=args.duration or 3600.0,
            faults=args.random_faults,
        )
        scenario = extra if scenario is None else type(extra)(scenario.name, scenario.faults + extra.faults)
    if scenario is not None:
        bad = [f for f in scenario.faults if f.vehicle >= args.vehicles]
        if bad:
            raise CliError(
                f"scenario has a {bad[0].kind} fault for vehicle {bad[0].vehicle}; run more --vehicles"
            )
    if args.write_scenario:
        if scenario is None:
            raise CliError("--write-scenario needs --scenario or --random-faults")
        args.write_scenario.write_text(json.dumps(scenario.to_json(), indent=1) + "\n")
        print(f"wrote {len(scenario.faults)} faults to {args.write_scenario}")
        return 0
    settings = get_settings()
    jt808_prefix = settings.jt808_device_prefix if args.protocol == "jt808" else None
    if args.protocol == "jt808" and args.memory:
        raise CliError("--memory runs the MQTT devices only")
    if args.register:
        # The registry belongs to the back office: the composition root hands its seeding function in
        # (fleetapp.cli sets `register_fleet`), so the simulator never imports a layer above it.
        if args.register_fleet is None:
            raise CliError("--register needs the back office (run it through the `fleet` command)")
        with connect(settings.require_database_url(), autocommit=True) as conn:
            rows = args.register_fleet(
                conn, vehicles=args.vehicles, seed=args.seed, scenario=scenario, jt808_prefix=jt808_prefix
            )
        print(
            f"registered {len(rows)} vehicles with devices {rows[0]['device_id']}..{rows[-1]['device_id']}",
            file=sys.stderr,
        )
    if args.memory:
        if not args.duration:
            raise CliError("--memory needs --duration")
        sim = runner.Simulation(
            vehicles=args.vehicles,
            rate_hz=args.rate,
            seed=args.seed,
            scenario=scenario,
            root=settings.topic_root,
        )
        counts: dict[str, int] = {}
        for m in sim.messages(args.duration):
            kind = m.topic.rsplit("/", 1)[1]
            counts[kind] = counts.get(kind, 0) + 1
        if args.truth_out:
            with open(args.truth_out, "a") as fh:
                runner.write_truth(sim.truth, fh)
        print(json.dumps({"messages": counts, "truth_records": len(sim.truth)}))
        return 0
    gateway = None
    if args.protocol == "jt808":
        host, _, port = (args.gateway or f"127.0.0.1:{settings.jt808_port}").rpartition(":")
        if not host or not port.isdigit():
            raise CliError("--gateway must be HOST:PORT")
        gateway = (host, int(port))
    elif not settings.mqtt_url:
        raise CliError("FLEET_MQTT_URL is not set (e.g. mqtt://127.0.0.1:1883)")
    stop = stop_on_signals()
    runner.run(
        settings,
        vehicles=args.vehicles,
        rate_hz=args.rate,
        seed=args.seed,
        scenario=scenario,
        stop=stop,
        speedup=args.speedup,
        truth_out=args.truth_out,
        duration_s=args.duration,
        connection=args.connection,
        client_prefix=args.client_prefix,
        warmup_s=args.warmup,
        jt808_gateway=gateway,
    )
    return 0
