"""Ingest subcommands (filled in by the ingest work)."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
