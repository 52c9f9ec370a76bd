"""Shared test configuration: the real-server fixtures live in tests/fix_<server>.py plugins."""

pytest_plugins = ["pytester", "tests.fix_postgres", "tests.fix_mariadb", "tests.fix_redis",
                  "tests.fix_observability"]
