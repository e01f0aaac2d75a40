"""The package's shape: no import cycles, data flowing one way through the layers, third-party
packages behind their fences, no import of the `modelreg` root from inside, and docs/architecture's
picture and CLI table equal to what the code imports.

Every import is read from the source by tools/import_graph.py (`ast`; the reader that also draws
docs/architecture.svg). The cycle check reads module-level imports only: an import inside a function
runs when it is called, so it cannot form a cycle at import time, and is how heavy or optional
modules are deferred. Every other rule holds for lazy (function-level) imports too.
"""

import textwrap
from collections.abc import Callable, Iterable

import pytest

from tools import import_graph as g
from tools.import_graph import Import

MODULES = g.modules()
IMPORTS = g.all_imports()
GRAPH = g.module_graph()  # module level only
EVERY_IMPORT = [i for found in IMPORTS.values() for i in found]


def test_the_source_tree_was_found():
    assert {"modelreg.formats.seal", "modelreg.ipfs.unixfs", "modelreg.chain.client", "modelreg.service.connect",
            "modelreg.cli.main", "modelreg.training.trainer", "modelreg.devnet.server"} <= set(GRAPH)


def test_no_module_imports_itself_through_others():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(GRAPH):
        if start not in state:
            visit(start, [start])


_layer = g.layer  # modelreg.chain.client -> "chain"; the top-level modules of registry/ -> "core"


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("formats", {"ipfs", "chain", "service", "cli", "training", "devnet"}),
    ("ipfs", {"chain", "service", "cli", "training", "devnet"}),
    ("chain", {"ipfs", "service", "cli", "training", "devnet"}),
    ("service", {"cli", "training"}),
    ("training", {"cli"}),
    ("devnet", {"formats", "ipfs", "chain", "service", "cli", "training", "contracts"}),
])
def test_data_flows_one_way_through_the_layers(layer, forbidden):
    wrong = sorted((m, t) for m, targets in GRAPH.items() if _layer(m) == layer
                   for t in targets if _layer(t) in forbidden)
    assert not wrong, f"{layer} imports a layer above it or beside it: {wrong}"


def test_the_library_never_imports_training_or_the_cli_even_lazily():
    offenders = [f"{i.module}:{i.line}: {i.target}" for i in EVERY_IMPORT
                 if _layer(i.module) not in ("cli", "training", "devnet")
                 and i.target.startswith(("modelreg.training", "modelreg.cli"))]
    assert not offenders, offenders


# issue24: the core installs without torch ------------------------------------------------------------

# what the train, hf and derive extras bring
TORCH_FAMILY = ("torch", "transformers", "accelerate", "tokenizers", "dp_accounting", "onnx", "onnxruntime")
# The core modules that may reach the extras, each only inside a function that calls `require` first.
EXTRA_GATES = {"modelreg.cli.train", "modelreg.cli.audit", "modelreg.cli.derive"}


def _in_core(name: str) -> bool:
    return _layer(name) not in ("training", "integrations")


def test_the_core_never_imports_torch_or_transformers_even_lazily():
    offenders = [f"{i.module}: {i.target}" for i in EVERY_IMPORT if _in_core(i.module) and i.root in TORCH_FAMILY]
    assert not offenders, f"the core must install and run without the train and hf extras: {offenders}"


def _require_lines(name: str, function: int) -> list[int]:
    """The lines of the `require(...)` calls in the function defined at line `function` of module `name`."""
    return g.call_lines(MODULES[name].read_text(encoding="utf-8"), function, "require")


def test_the_core_reaches_training_only_through_a_gate_that_names_the_extra():
    offenders = []
    for i in EVERY_IMPORT:
        if not _in_core(i.module) or not i.target.startswith(("modelreg.training", "modelreg.integrations")):
            continue
        gated = (i.module in EXTRA_GATES and i.function is not None
                 and any(line < i.line for line in _require_lines(i.module, i.function)))
        if not gated:
            offenders.append(f"{i.module}:{i.line}: {i.target}{'' if i.lazy else ' at module level'}")
    assert not offenders, offenders


def test_the_extras_gate_names_every_module_the_extra_brings():
    # A gate that checks for less than the extra installs lets a bare ModuleNotFoundError through.
    from modelreg._extras import EXTRAS

    brought = {i.root for i in EVERY_IMPORT if not _in_core(i.module) and i.root in TORCH_FAMILY}
    assert brought <= set(EXTRAS["train"]) | set(EXTRAS["hf"]) | set(EXTRAS["derive"])


# issue21: third-party fences ---------------------------------------------------------------------------

def _ethereum(root: str) -> bool:
    """web3 and the eth-* family: web3.py, py-evm (`eth`), eth-tester, eth-account, eth-abi, eth-utils, ..."""
    return root in ("web3", "hexbytes", "rlp", "trie", "py_ecc") or root == "eth" or root.startswith("eth_")


# name -> (which imports it fences, the layers that may import them, {module: roots it may import anyway})
FENCES: dict[str, tuple[Callable[[str], bool], set[str], dict[str, set[str]]]] = {
    # Only the chain client and the devnet talk to a chain; every other layer asks `RegistryClient`
    # (head, block_hash, balance, gas_price), whose calls map a dead node to ChainUnavailable.
    # formats' two trees hash exactly what the contract's abi.encode and keccak256 hash: an encoding,
    # not a chain, and formats may not import chain. eth_abi's encoder and eth_utils' keccak there only.
    "web3 and eth-*": (_ethereum, {"chain", "devnet"},
                       {"modelreg.formats.merkle": {"eth_abi"}, "modelreg.formats.mmr": {"eth_abi", "eth_utils"}}),
    # training/ is the torch code; integrations/transformers.py, the Trainer callback, records torch's
    # version in each manifest's environment (the `hf` extra that brings it brings torch too).
    "torch": (lambda root: root == "torch", {"training", "integrations"}, {}),
    "transformers": (lambda root: root == "transformers", {"integrations"}, {}),
}


def fence_offenders(imports: Iterable[Import], fenced: Callable[[str], bool], layers: set[str],
                    exceptions: dict[str, set[str]]) -> list[str]:
    """Each import of a fenced package by a module outside `layers`, module level or lazy."""
    return [f"{i.module}:{i.line}: {i.target}{' (lazy)' if i.lazy else ''}" for i in imports
            if fenced(i.root) and _layer(i.module) not in layers and i.root not in exceptions.get(i.module, ())]


@pytest.mark.parametrize("fence", FENCES)
def test_third_party_packages_stay_behind_their_fences_even_lazily(fence):
    offenders = fence_offenders(EVERY_IMPORT, *FENCES[fence])
    assert not offenders, f"{fence} imported outside {sorted(FENCES[fence][1])}: {offenders}"


def eth_offenders(module: str, source: str) -> list[str]:
    """web3 used without an import: `something.eth.<call>` (a Web3's `eth` namespace) outside the
    chain layer and the devnet, where it would bypass the client's error mapping."""
    if _layer(module) in FENCES["web3 and eth-*"][1]:
        return []
    return [f"{module}:{line}: .eth" for line in g.attribute_lines(source, "eth")]


def test_web3_is_not_used_through_a_client_outside_the_chain_layer():
    offenders = [o for name, path in MODULES.items() for o in eth_offenders(name, path.read_text(encoding="utf-8"))]
    assert not offenders, f"ask RegistryClient (head, block_hash, balance, gas_price, ...) instead: {offenders}"


@pytest.mark.parametrize(("module", "source", "caught"), [
    ("modelreg.training.register", "def f(client):\n    return client.w3.eth.block_number\n", True),
    ("modelreg.service.connect", "chain_id = w3.eth.chain_id\n", True),
    ("modelreg.chain.client", "def head(self):\n    return self.w3.eth.block_number\n", False),
    ("modelreg.service.index", "head = client.head\n", False),
])
def test_the_web3_use_check_catches_a_client_reaching_into_web3(module, source, caught):
    assert bool(eth_offenders(module, source)) is caught


def root_offenders(imports: Iterable[Import]) -> list[str]:
    """Imports of the `modelreg` root from inside the package (the root module itself excepted).

    The rule: inside the package, the name `modelreg` is never bound and nothing is taken from the
    root. `import modelreg` and `import modelreg.x` bind it (and reach `modelreg.connect` and the
    other root attributes); `from modelreg import connect` (or `from .. import connect`) takes a
    root attribute. `from modelreg import caps` imports the submodule modelreg.caps, as
    `from modelreg.caps import ...` would, and is fine: the root's API is built on the layers, so
    a layer that used it would import upward, and the root's lazy imports would form a cycle.
    """
    return [f"{i.module}:{i.line}: {'import' if i.statement == 'import' else 'from'} {i.target}"
            f"{' (lazy)' if i.lazy else ''}" for i in imports if i.module != g.API
            and (i.target == g.API if i.statement == "from" else i.root == g.API)]


def test_nothing_inside_the_package_imports_the_modelreg_root_even_lazily():
    offenders = root_offenders(EVERY_IMPORT)
    assert not offenders, f"import the layer's module (modelreg.service.connect, ...), not the root: {offenders}"


def _read(source: str, module: str) -> list[Import]:
    return g.read_imports(textwrap.dedent(source), module, known=MODULES)


@pytest.mark.parametrize(("fence", "module", "source"), [
    ("web3 and eth-*", "modelreg.chain.client", "from web3 import Web3\n"),
    ("web3 and eth-*", "modelreg.devnet.chain", "from eth.vm.forks import PragueVM\n"),
    ("web3 and eth-*", "modelreg.formats.mmr", "from eth_utils import keccak\n"),
    ("torch", "modelreg.training.trainer", "import torch\n"),
    ("torch", "modelreg.integrations.transformers", "def f():\n    import torch.distributed\n"),
    ("transformers", "modelreg.integrations.transformers", "from transformers import TrainerCallback\n"),
])
def test_a_fence_lets_its_own_layers_through(fence, module, source):
    assert fence_offenders(_read(source, module), *FENCES[fence]) == []


@pytest.mark.parametrize(("fence", "module", "source"), [
    ("web3 and eth-*", "modelreg.service.preflight", """
        def balance(client):
            from web3 import Web3
     """),
    ("web3 and eth-*", "modelreg.training.register", "import eth_account\n"),
    ("web3 and eth-*", "modelreg.service.replay", "from hexbytes import HexBytes\n"),
    ("web3 and eth-*", "modelreg.formats.merkle", "from eth_account import Account\n"),  # the exception is narrow
    ("web3 and eth-*", "modelreg.contracts.released", "from eth_utils import keccak\n"),
    ("torch", "modelreg.service.background", """
        class Committer:
            def rank(self):
                import torch.distributed as dist
     """),
    ("torch", "modelreg.cli.train", "if True:\n    import torch\n"),
    ("transformers", "modelreg.training.trainer", "from transformers import AutoModel\n"),
])
def test_a_fence_catches_an_import_from_outside_even_a_lazy_one(fence, module, source):
    (offender,) = fence_offenders(_read(source, module), *FENCES[fence])
    assert offender.startswith(f"{module}:")


@pytest.mark.parametrize("source", [
    "import modelreg\n",
    "def connect():\n    import modelreg\n    return modelreg.connect()\n",
    "from modelreg import connect\n",
    "from modelreg import ModelregError\n",
    "from .. import seal\n",
    "import modelreg.caps\n",
])
def test_the_root_fence_catches_an_import_of_the_root(source):
    (offender,) = root_offenders(_read(source, "modelreg.service.background"))
    assert offender.startswith("modelreg.service.background:")


@pytest.mark.parametrize("source", [
    "from modelreg import caps\n",
    "from .. import errors\n",
    "from modelreg.service.connect import open_registry\n",
    "def f():\n    from modelreg.errors import ModelregError\n",
])
def test_the_root_fence_lets_submodule_imports_through(source):
    assert root_offenders(_read(source, "modelreg.service.background")) == []


def test_the_root_itself_may_import_its_submodules():
    assert root_offenders(_read("from modelreg import errors as _errors\n", "modelreg")) == []


# issue21: docs/architecture.md shows the code's imports ---------------------------------------------------

def test_the_architecture_picture_is_drawn_from_the_current_imports():
    assert g.SVG.read_text(encoding="utf-8") == g.render_svg(), (
        f"{g.SVG.relative_to(g.ROOT)} no longer shows what the code imports: run `{g.REGENERATE}` and commit it")


def test_the_architecture_doc_embeds_the_picture_and_the_current_cli_table():
    doc = g.DOC.read_text(encoding="utf-8")
    assert f"]({g.SVG.name})" in doc
    assert g.with_cli_table(doc) == doc, (
        f"the CLI table of {g.DOC.relative_to(g.ROOT)} is stale: run `{g.REGENERATE}` and commit it")


def test_the_architecture_doc_says_why_the_cli_reaches_past_the_service():
    # The table says which CLI module imports which layer; the text must say why for each layer
    # the CLI uses other than the service.
    doc = g.DOC.read_text(encoding="utf-8")
    used = {layer for row in g.cli_layers().values() for layer in row} - {"service"}
    missing = sorted(layer for layer in used if f"**cli → {layer}**" not in doc)
    assert not missing, f"{g.DOC.relative_to(g.ROOT)} does not say why the CLI imports {missing}"


def test_the_reader_sees_lazy_relative_and_type_checking_imports():
    found = _read("""
        from typing import TYPE_CHECKING
        from .. import caps
        from ..chain import client
        from . import connect
        if TYPE_CHECKING:
            from modelreg.service.connect import Registry
        try:
            import tomllib
        except ImportError:
            import tomli as tomllib
        def f():
            from ..formats import seal
            return lambda: __import__("json")
    """, "modelreg.service.audit")
    assert [(i.target, i.lazy) for i in found] == [
        ("typing", False), ("modelreg.caps", False), ("modelreg.chain.client", False),
        ("modelreg.service.connect", False), ("modelreg.service.connect", True), ("tomllib", False),
        ("tomli", False), ("modelreg.formats.seal", True)]
