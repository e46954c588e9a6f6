from tests.local.conftest import client, local_stack  # noqa: F401  (shared fixtures)
