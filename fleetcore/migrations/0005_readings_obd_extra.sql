-- OBD-II values that have no column of their own (every service 01 PID python-OBD decodes beyond the eight with a
-- column), pending (07) and permanent (0A) DTCs, the VIN (09 02), and answers nobody decodes kept raw
-- ({"raw": {"41 E1": "0102"}}): see docs/device-guide.md §6. NULL for every other reading.
ALTER TABLE readings ADD COLUMN IF NOT EXISTS obd_extra jsonb;
