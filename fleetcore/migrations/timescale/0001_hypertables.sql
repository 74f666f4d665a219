-- Re-runnable: turn the time-series tables into hypertables (no-op when they already are).
-- readings gets no default time index: TimescaleDB would add one on (ts DESC), which no query uses (every read
-- of readings is per vehicle and served by readings_sample_key (vehicle_id, ts DESC, ...)) and which every
-- insert would pay for. Databases created before this are fixed by the DROP below.
SELECT create_hypertable('readings', 'ts',
    chunk_time_interval => current_setting('fleet.chunk_interval')::interval,
    create_default_indexes => false,
    if_not_exists => true, migrate_data => true);
DROP INDEX IF EXISTS readings_ts_idx;
SELECT create_hypertable('device_events', 'ts',
    chunk_time_interval => interval '7 days',
    if_not_exists => true, migrate_data => true);
