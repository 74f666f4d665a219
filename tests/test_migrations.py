import psycopg
import pytest

from fleetcore.db import list_migrations, migrate, one, uses_timescale
from fleetcore.settings import Settings


def test_template_engines(templates, any_db_url):
    with psycopg.connect(any_db_url) as conn:
        ts = uses_timescale(conn)
        is_hyper = one(conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'readings'"))[0]
        assert is_hyper == 1
        if "timescale" in conn.info.dbname or ts:
            n = one(
                conn.execute(
                    "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name IN ('readings', 'device_events')"
                )
            )[0]
            assert n == 2


def test_migrate_is_idempotent_and_recorded(db_url):
    applied = migrate(db_url, Settings(environment="test", timescale="on"))
    assert all(not a.endswith(".sql") for a in applied)  # nothing numbered re-applied
    with psycopg.connect(db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in list_migrations()]


@pytest.mark.parametrize("bad", ["mysql://x", "http://localhost"])
def test_bad_database_url_rejected(bad):
    with pytest.raises(ValueError, match="libpq URL"):
        Settings(database_url=bad)


def test_readings_carry_one_index(any_db_url):
    """Every insert pays for each index on readings; only the per-vehicle one is read, so it is the only one."""
    with psycopg.connect(any_db_url) as conn:
        names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'readings'")]
    assert names == ["readings_sample_key"]


def test_timescale_default_time_index_dropped_on_migrate(db_url):
    """A database whose hypertable was created with TimescaleDB's default (ts DESC) index loses it on migrate."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX readings_ts_idx ON readings (ts DESC)")
    migrate(db_url, Settings(environment="test", timescale="on"))
    with psycopg.connect(db_url) as conn:
        n = one(conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'readings_ts_idx'"))[0]
    assert n == 0
