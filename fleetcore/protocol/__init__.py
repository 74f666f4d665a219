"""The device protocol: the pure message parser (with its compiled fast path) and the codecs it uses (NMEA 0183,
OBD-II / SAE J1979, VIN / ISO 3779). Both consumers of the device topics (ingest and monitor) and the simulator
use these; nothing here does I/O."""
