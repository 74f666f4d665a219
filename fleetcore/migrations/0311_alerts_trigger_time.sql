-- The monitor writes a detection only when it is newer than every trigger already recorded for its vehicle and
-- kind (monitor.service.raise_ with only_new=True): a message redelivered after a restart, or judged again, is
-- not a new occurrence. This index answers "the newest trigger of this kind for this vehicle" without reading
-- the vehicle's whole alert history.
CREATE INDEX alerts_vehicle_kind_seen ON alerts (vehicle_id, kind, last_seen_at DESC);
