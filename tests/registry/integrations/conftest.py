"""The integrations commit to the service tests' registry (tests/registry/service/conftest.py)."""

from tests.registry.service.conftest import connected_registry, module_home  # noqa: F401  (the fixtures)
