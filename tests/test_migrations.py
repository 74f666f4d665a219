import psycopg
import pytest

from fleetcore.db import list_migrations, migrate, uses_timescale
from fleetcore.settings import Settings


def test_template_engines(templates, any_db_url):
    with psycopg.connect(any_db_url) as conn:
        ts = uses_timescale(conn)
        is_hyper = conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'readings'").fetchone()[0]
        assert is_hyper == 1
        if "timescale" in conn.info.dbname or ts:
            n = conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name IN ('readings', 'device_events')"
            ).fetchone()[0]
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
