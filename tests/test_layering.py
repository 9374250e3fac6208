"""The layering of the code, kept true (docs/architecture.md): the library never imports the
command line or the monitor, the monitor reads the store and never imports the trainer, and
`fembed list` starts without jax."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(folder: str) -> dict[str, set[str]]:
    """file -> the fembed_jax modules it imports (absolute and relative, at any depth)."""
    package = {"fembed_jax": "fembed_jax", "cli": "fembed_jax.cli", "tui": "fembed_jax.tui"}[folder.split("/")[0]]
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        here = package + "".join("." + p for p in path.relative_to(ROOT / folder).parent.parts)
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    names.add(f"{base}.{node.module}" if node.module else base)
                else:
                    names.add(node.module or "")
        found[str(path.relative_to(ROOT))] = {n for n in names if n.startswith("fembed_jax")}
    return found


@pytest.mark.parametrize("folder, forbidden", [
    ("fembed_jax", ("fembed_jax.cli", "fembed_jax.tui")),
    ("tui", ("fembed_jax.train", "fembed_jax.cli")),
])
def test_no_module_imports_a_layer_above_it(folder, forbidden):
    offenders = {path: sorted(n for n in names if n.startswith(forbidden))
                 for path, names in _imports(folder).items()}
    assert not {p: n for p, n in offenders.items() if n}, offenders


def test_fembed_list_does_not_load_jax(tmp_path):
    env = {**os.environ, "FEMBED_CACHE": str(tmp_path)}  # its own cache: warmed by the first call
    code = ("import sys; from fembed_jax.cli.main import main; main(['list', '--json', '-p', 'P4']); "
            "print('JAX-LOADED' if 'jax' in sys.modules else 'NO-JAX', file=sys.stderr)")
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)  # warms the counts
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "NO-JAX" in second.stderr, second.stderr


def test_nothing_turns_ray_authentication_off():
    """`--backend ray` reports RAY_AUTH_MODE and never sets it (a cluster without it runs any
    job anyone on the network submits)."""
    import re

    setting = re.compile(r"""RAY_AUTH_MODE["']\s*\]\s*=|setdefault\(\s*["']RAY_AUTH_MODE|putenv\(\s*["']RAY_AUTH_MODE""")
    for folder in ("fembed_jax", "cli", "tui"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not setting.search(path.read_text()), path


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for the library and its installed cli/tui packages."""
    files = {}
    for folder, package in (("fembed_jax", "fembed_jax"), ("cli", "fembed_jax.cli"), ("tui", "fembed_jax.tui")):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            files[name.removesuffix(".__init__")] = path
    return files


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _edges(files: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the library modules it imports anywhere in its body (function-local imports
    too: a cycle through them still makes the two modules one unit; imports for annotations
    only are not counted)."""
    edges = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name if is_package else name.rsplit(".", 1)[0]
                    anchor = anchor.rsplit(".", node.level - 1)[0] if node.level > 1 else anchor
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        edges[name] = {t for t in targets if t in files and t != name}
    return edges


def test_the_import_map_has_no_cycles():
    edges = _edges(_module_files())
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_reaches_into_another_modules_private_names():
    """A module uses other modules' public names only (the Ray backend once called 16 private
    names of the local runner)."""
    files = _module_files()
    offenders = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}  # local name -> library module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fembed_jax"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}")
                    if f"{node.module}.{alias.name}" in files:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in files and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                offenders.append(f"{path.relative_to(ROOT)}: {node.value.id}.{node.attr}")
    assert not offenders, "\n".join(offenders)


def test_every_package_is_listed_for_the_wheel():
    """pyproject names its packages one by one: a new sub-package left out is missing from the
    wheel (an editable checkout still finds it, so nothing else would notice)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {name for name, path in _module_files().items() if path.name == "__init__.py"}
    assert found <= listed, sorted(found - listed)
