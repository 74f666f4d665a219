"""Vehicles: registration, the CSV importer, status with its transitions and history."""
