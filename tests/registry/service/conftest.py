"""The registry the API tests commit to: `modelreg.connect` on a data directory of the module's own,
its embedded devnet started on the first connect and stopped after the module's last test.

Shared by the service tests here and, imported, by tests/registry/test_public_api.py and
tests/registry/integrations/: a `registry` fixture in tests/registry/conftest.py would hide the
root conftest's chain-parametrized `registry`, a `RegistryClient`, from tests/registry/chain/.
The functions have names of their own, so that importing them shadows no test's argument.
"""

import pytest

import modelreg
from modelreg.devnet import manager


@pytest.fixture(scope="module", name="home")
def module_home(tmp_path_factory):
    """The module's data directory; its devnet, if one was started, is stopped afterwards."""
    home = tmp_path_factory.mktemp("home")
    try:
        yield home
    finally:
        manager.down(home)


@pytest.fixture(scope="module", name="registry")
def connected_registry(home):
    """A `Registry` connected as configured by default: the embedded devnet and IPFS store of `home`."""
    return modelreg.connect(home)
