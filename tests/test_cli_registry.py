"""`fleet stations add` and `fleet vehicles import` as a user runs them: clear messages, exit codes, all-or-nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backoffice.vehicles import importer
from fleetcore.db import connect, one
from tests import factories

# The installed console script, as users run it (`python -m fleetapp.cli` would load fleetapp.cli twice).
FLEET = str(Path(sys.executable).parent / "fleet")
HEADER = "vin,plate,make,model,year,class,station,device_id"


def fleet_cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEET_DATABASE_URL": db_url, "FLEET_ENVIRONMENT": "test"}
    return subprocess.run([FLEET, *args], capture_output=True, text=True, env=env, timeout=60)


def count(db_url: str, table: str) -> int:
    with connect(db_url) as conn:
        return one(conn.execute(f"SELECT count(*) AS n FROM {table}"))["n"]  # noqa: S608 - fixed names


def test_stations_add_and_list(db_url):
    r = fleet_cli(
        db_url,
        "stations",
        "add",
        "--code",
        "ber-txl",
        "--name",
        "Berlin Tegel",
        "--lat",
        "52.56",
        "--lon",
        "13.29",
    )
    assert r.returncode == 0, r.stderr
    assert "station BER-TXL added" in r.stdout
    bad = [
        (("--code", "BER-TXL", "--name", "Again", "--lat", "1", "--lon", "1"), "already exists"),
        (("--code", "NORTH", "--name", "Pole", "--lat", "91", "--lon", "0"), "coordinates out of range"),
        (("--code", "a b", "--name", "X", "--lat", "1", "--lon", "1"), "must be 2-16 letters"),
        (("--code", "OK2", "--name", "X", "--lat", "north", "--lon", "1"), "invalid float value"),
    ]
    for args, text in bad:
        r = fleet_cli(db_url, "stations", "add", *args)
        assert r.returncode != 0, args
        assert text in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = fleet_cli(db_url, "stations", "list")
    assert r.returncode == 0 and "BER-TXL" in r.stdout and "Berlin Tegel" in r.stdout
    assert count(db_url, "stations") == 1


def test_vehicles_import_good_file(db_url, tmp_path: Path):
    with connect(db_url, autocommit=True) as conn:
        factories.station(conn, code="HAM")
    vins = [factories.vin() for _ in range(3)]
    path = tmp_path / "fleet.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                f"{vins[0]},HH-AB 1,Volkswagen,Golf,2023,compact,HAM,dev-imp-1",
                f"{vins[1].lower()},hh-ab 2,Tesla,Model 3,2024,EV,ham,",
                "",
                f'{vins[2]},HH-AB 3,"Mercedes-Benz","Vito, Tourer",2022,van,HAM,dev-imp-3',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    r = fleet_cli(db_url, "vehicles", "import", str(path))
    assert r.returncode == 0, r.stderr
    assert "imported 3 vehicles" in r.stdout
    with connect(db_url) as conn:
        rows = conn.execute("SELECT vin, plate, class, model, status FROM vehicles ORDER BY plate").fetchall()
        assert [(v["vin"], v["plate"], v["class"]) for v in rows] == [
            (vins[0], "HH-AB 1", "compact"),
            (vins[1], "HH-AB 2", "ev"),
            (vins[2], "HH-AB 3", "van"),
        ]
        assert rows[2]["model"] == "Vito, Tourer" and {v["status"] for v in rows} == {"available"}
        devices = conn.execute(
            "SELECT device_id FROM device_installs WHERE removed_at IS NULL ORDER BY 1"
        ).fetchall()
        assert [d["device_id"] for d in devices] == ["dev-imp-1", "dev-imp-3"]
        audit = conn.execute("SELECT actor, action, entity_id FROM audit_log ORDER BY id").fetchall()
        assert [(a["actor"], a["action"]) for a in audit] == [("cli", "vehicle.import")] * 3
        hist = one(conn.execute("SELECT count(*) AS n FROM vehicle_status_history"))["n"]
        assert hist == 3
    # importing the same file again is refused as a whole
    r = fleet_cli(db_url, "vehicles", "import", str(path))
    assert r.returncode != 0 and "already exists" in r.stderr
    assert count(db_url, "vehicles") == 3


def test_vehicles_import_bad_file_names_every_line_and_imports_nothing(db_url, tmp_path: Path):
    with connect(db_url, autocommit=True) as conn:
        factories.station(conn, code="MUC")
        existing = factories.vehicle(conn, station_code="MUC")
    good_vin = factories.vin()
    bad_digit = good_vin[:8] + ("0" if good_vin[8] != "0" else "1") + good_vin[9:]
    lines = [
        HEADER,
        f"{good_vin},M-OK 1,VW,Polo,2023,economy,MUC,",  # line 2: fine on its own
        f"{factories.vin()},M-OK 2,VW,Polo,2023,economy,XXX,",  # line 3: unknown station
        f"{bad_digit},M-OK 3,VW,Polo,2023,economy,MUC,",  # line 4: check digit
        f"{factories.vin()},M-OK 1,VW,Polo,2023,economy,MUC,",  # line 5: plate duplicates line 2
        f"{factories.vin()},{existing['plate']},VW,Polo,2023,economy,MUC,",  # line 6: plate already registered
        f"{factories.vin()},M-OK 7,VW,Polo,2023",  # line 7: too few fields
        f"{factories.vin()},M-OK 8,VW,Polo,199x,boat,MUC,",  # line 8: year and class
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = count(db_url, "vehicles")
    r = fleet_cli(db_url, "vehicles", "import", str(path))
    assert r.returncode == 2
    err = r.stderr
    expected = {
        3: "unknown station 'XXX'",
        4: "check digit",
        5: "duplicate plate 'M-OK 1' (also on line 2)",
        6: f"duplicate plate {existing['plate']!r}: already registered",
        7: "expected 8 fields, got 5",
    }
    for line, text in expected.items():
        assert any(ln.startswith(f"{path}:{line}: ") and text in ln for ln in err.splitlines()), (line, err)
    assert f"{path}:8: invalid year '199x'" in err and "unknown class 'boat'" in err
    assert f"{path}:2:" not in err
    assert "nothing imported: 7 problem(s)" in err
    assert "Traceback" not in err
    assert count(db_url, "vehicles") == before
    assert count(db_url, "audit_log") == 0


MALFORMED = [
    (HEADER + '\n{vin},"B-Q 1,VW,Golf,2023,compact,BER,\n', 2, "malformed CSV"),  # unclosed quote
    ("vin;plate;make\n", 1, "header must be"),
    ("", 1, "file is empty"),
    (HEADER + "\n{vin},B-Q 2,VW,Golf,2023,compact,BER,dev\x00x\n", 2, "malformed CSV"),  # NUL byte
]


def test_vehicles_import_malformed_files(db_url, tmp_path: Path):
    with connect(db_url, autocommit=True) as conn:
        factories.station(conn, code="BER")
    for i, (content, line, text) in enumerate(MALFORMED):
        path = tmp_path / f"broken{i}.csv"
        path.write_text(content.format(vin=factories.vin()), encoding="utf-8")
        r = fleet_cli(db_url, "vehicles", "import", str(path))
        assert r.returncode == 2, (content, r.stdout)
        assert f"{path}:{line}: " in r.stderr and text in r.stderr, (content, r.stderr)
        assert "Traceback" not in r.stderr
    assert count(db_url, "vehicles") == 0


def test_vehicles_import_missing_or_binary_file(db_url, tmp_path: Path):
    r = fleet_cli(db_url, "vehicles", "import", str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    binary = tmp_path / "latin1.csv"
    binary.write_bytes(HEADER.encode() + b"\n\xff\xfe\n")
    r = fleet_cli(db_url, "vehicles", "import", str(binary))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_parse_vehicle_csv_pure():
    """The parser alone: no database, every field checked, line numbers as a text editor counts them."""
    v1, v2 = factories.vin(), factories.vin()
    text = (
        f'\ufeff{HEADER}\n{v1},B-1,VW,Golf,2023,Compact,ber,d-1\n\n"{v2}",B-2,"VW","Up!",2021,economy,BER,\n'
    )
    rows, problems = importer.parse_csv(text)
    assert problems == []
    assert [(r.line, r.vin, r.vehicle_class, r.station, r.device_id) for r in rows] == [
        (2, v1, "compact", "BER", "d-1"),
        (4, v2, "economy", "BER", ""),
    ]
    _, problems = importer.parse_csv(f"{HEADER}\n{v1},,VW,,2023,compact,BER,bad id\n")
    assert [p for _, p in problems] == [
        "invalid plate ''",
        "make and model are required",
        "invalid device_id 'bad id'",
    ]


def test_concurrent_imports_of_the_same_vehicles_leave_exactly_one(db_url):
    """Both imports pass the up-front checks; the database's unique keys decide, and the loser imports nothing."""
    import threading

    with connect(db_url, autocommit=True) as conn:
        factories.station(conn, code="CGN")
    text = (
        "\n".join([HEADER] + [f"{factories.vin()},K-CC {i},VW,Golf,2023,compact,CGN," for i in range(3)])
        + "\n"
    )
    first = connect(db_url)  # holds its transaction open until the second import is blocked on it
    assert importer.import_csv(first, text=text) == 3
    outcome: dict[str, object] = {}

    def second() -> None:
        with connect(db_url) as conn:
            try:
                outcome["n"] = importer.import_csv(conn, text=text)
            except importer.ImportFailed as exc:
                outcome["error"] = exc

    t = threading.Thread(target=second)
    t.start()
    t.join(timeout=1.0)
    assert t.is_alive(), "the second import should wait on the first one's uncommitted rows"
    first.commit()
    first.close()
    t.join(timeout=30)
    assert "n" not in outcome
    err = outcome["error"]
    assert "line 2: conflicts with a record written meanwhile" in str(err)
    assert count(db_url, "vehicles") == 3
    assert count(db_url, "audit_log") == 3
