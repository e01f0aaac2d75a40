"""The package's shape: no import cycles, and data flowing one way through the layers.

Read from the source with `ast`, module-level imports only (an import inside a function runs
when it is called, so it cannot form a cycle at import time, and is how heavy or optional
modules are deferred).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"registry": "modelreg", "cli": "modelreg.cli", "training": "modelreg.training",
           "contracts": "modelreg.contracts", "hardhat-free-devnet": "modelreg.devnet"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            # registry/ holds modelreg itself: a file of registry/ never shadows a sibling folder's package
            if folder == "registry" and name.split(".")[1:2] and name.split(".")[1] in ("cli", "training",
                                                                                         "contracts", "devnet"):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _top_level_imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _top_level_imports(path, name) for name, path in MODULES.items()}


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


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "modelreg"


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
    offenders = []
    for name, path in MODULES.items():
        if _layer(name) in ("cli", "training", "devnet"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("modelreg.training", "modelreg.cli")):
                offenders.append(f"{name}: from {node.module}")
    assert not offenders, offenders


# issue24: the core installs without torch ------------------------------------------------------------

# what the train, hf and derive extras bring
TORCH_FAMILY = ("torch", "transformers", "accelerate", "tokenizers", "dp_accounting", "onnx", "onnxruntime")
# The core modules that may reach the extras, each only inside a function that calls `require` first.
EXTRA_GATES = {"modelreg.cli.train", "modelreg.cli.audit", "modelreg.cli.derive"}


def _imports_anywhere(path: Path) -> list[tuple[ast.AST, str]]:
    """Every import in the file, module level or inside a function (a lazy import still runs)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.append((node, node.module or ""))
    return found


def _root(module: str) -> str:
    return module.split(".")[0]


def _in_core(name: str) -> bool:
    return _layer(name) not in ("training", "integrations")


def test_the_core_never_imports_torch_or_transformers_even_lazily():
    offenders = [f"{name}: {target}" for name, path in MODULES.items() if _in_core(name)
                 for _, target in _imports_anywhere(path) if _root(target) in TORCH_FAMILY]
    assert not offenders, f"the core must install and run without the train and hf extras: {offenders}"


def test_the_core_reaches_training_only_through_a_gate_that_names_the_extra():
    offenders = []
    for name, path in MODULES.items():
        if not _in_core(name):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
            calls = [n.lineno for n in ast.walk(func) if isinstance(n, ast.Call)
                     and getattr(n.func, "id", None) == "require"]
            for node in (n for n in ast.walk(func) if isinstance(n, ast.ImportFrom)):
                module = node.module or ""
                gated = name in EXTRA_GATES and any(line < node.lineno for line in calls)
                if module.startswith(("modelreg.training", "modelreg.integrations")) and not gated:
                    offenders.append(f"{name}:{node.lineno}: from {module}")
        offenders += [f"{name}: {target} at module level" for target in GRAPH[name]
                      if not _in_core(target)]
    assert not offenders, offenders


def test_the_extras_gate_names_every_module_the_extra_brings():
    # A gate that checks for less than the extra installs lets a bare ModuleNotFoundError through.
    from modelreg._extras import EXTRAS

    brought = {_root(t) for name, path in MODULES.items() if not _in_core(name)
               for _, t in _imports_anywhere(path) if _root(t) in TORCH_FAMILY}
    assert brought <= set(EXTRAS["train"]) | set(EXTRAS["hf"]) | set(EXTRAS["derive"])


def test_web3_stays_in_the_chain_layer_and_the_devnet_even_lazily():
    offenders = [f"{name}: {target}" for name, path in MODULES.items() if _layer(name) not in ("chain", "devnet")
                 for _, target in _imports_anywhere(path) if _root(target) in ("web3", "eth_tester")]
    assert not offenders, offenders
