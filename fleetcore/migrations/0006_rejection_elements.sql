-- One rejection row per message: the element-level rejections of an accepted message (bad array elements, NMEA
-- lines, OBD frames) are one row holding the payload once, with the failing indices and their reasons here
-- ({"count": n, "indices": [...], "by_reason": {...}, "first": [{"index", "reason", "detail"}, ...]}). Before,
-- each bad element stored the whole payload again (1,000 bad elements of a 123 KB message: 75 MB). NULL for a
-- message rejected as a whole.
ALTER TABLE ingest_rejections ADD COLUMN IF NOT EXISTS elements jsonb;
