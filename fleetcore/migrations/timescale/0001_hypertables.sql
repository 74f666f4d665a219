-- Re-runnable: turn the time-series tables into hypertables (no-op when they already are).
SELECT create_hypertable('readings', 'ts',
    chunk_time_interval => current_setting('fleet.chunk_interval')::interval,
    if_not_exists => true, migrate_data => true);
SELECT create_hypertable('device_events', 'ts',
    chunk_time_interval => interval '7 days',
    if_not_exists => true, migrate_data => true);
