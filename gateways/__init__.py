"""Protocol gateways: vendor device protocols in, the device contract (fleetcore.contract) out over MQTT.

Each gateway is a process (`fleet gateway teltonika`, `fleet gateway jt808`) that republishes what a vendor's unit
sends as contract messages on `{root}/devices/{device_id}/...`, so ingest and the monitor consume it unchanged.
Translation is pure (teltonika.translate, jt808.location); publishing and I/O live in the worker/server modules.
"""
