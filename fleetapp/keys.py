"""`fleet crypto keygen` and `fleet crypto rotate`: keys for personal identifiers at rest (fleetcore/crypto.py)."""

from __future__ import annotations

import argparse

from backoffice.customers import service as customers
from backoffice.hr import employees, recruitment
from backoffice.payroll import service as payroll
from backoffice.performance import service as performance
from fleetcore import crypto
from fleetcore.db import connect
from fleetcore.settings import get_settings

CLI = {"username": "cli"}  # the actor of CLI writes in the audit log


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crypto", help="keys of personal identifiers at rest: generate, rotate")
    csub = p.add_subparsers(dest="crypto_command", metavar="SUBCOMMAND", required=True)
    g = csub.add_parser("keygen", help="print a new key for FLEET_DATA_KEYS or FLEET_BLIND_INDEX_KEY")
    g.add_argument("--id", default="k1", help="key id to prefix (FLEET_DATA_KEYS form `id:key`)")
    g.set_defaults(func=cmd_keygen)
    r = csub.add_parser(
        "rotate",
        help="re-encrypt every identifier under the current (first) data key and recompute the blind indexes",
    )
    r.set_defaults(func=cmd_rotate)


def cmd_keygen(args: argparse.Namespace) -> int:
    print(f"{args.id}:{crypto.generate_key()}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    settings = get_settings()
    crypto.configure(settings)
    cipher = crypto.cipher()
    with connect(settings.require_database_url()) as conn:
        n = customers.rotate_keys(conn)
        staff = {
            "employees": employees.rotate_keys(conn, cipher=cipher, actor=CLI),
            "offers": recruitment.rotate_keys(conn, cipher=cipher, actor=CLI),
            "reviews": performance.rotate_keys(conn, cipher=cipher, actor=CLI),
            "payslips": payroll.rotate_keys(conn, cipher=cipher, actor=CLI),
        }
    hr = ", ".join(f"{v} {k}" for k, v in staff.items())
    print(f"re-encrypted {n} customer(s) and {hr} under key {cipher.current!r}")
    return 0
