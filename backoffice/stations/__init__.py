"""Rental stations: where vehicles are based and orders are picked up and returned."""
