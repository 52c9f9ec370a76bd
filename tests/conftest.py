"""Shared test configuration: the real-server fixtures live in tests/fix_<server>.py plugins."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "tests.fix_postgres", "tests.fix_mariadb", "tests.fix_redis",
                  "tests.fix_observability", "tests.fix_ends"]

# Speed lives in benchmarks, not in tests: hypothesis's per-example deadline and its
# "generation is slow" check time the machine, and failed property runs here when
# the machine was busy (a benchmark beside them) with nothing wrong in the code.
settings.register_profile("cdcsync", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cdcsync")
