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


def test_the_command_line_starts_without_numpy_pandas_or_jax():
    """Building the parser imports every command module: `fembed --help`, `list` and `status`
    start in ~0.15 s because none of them imports numpy, pandas or jax at the top (0.65 s when a
    module-level import of the report package pulled pandas in)."""
    code = ("import sys\nfrom fembed_jax.cli.main import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('numpy', 'pandas', 'jax', 'textual') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout


# Loading any of these is what makes an import worth deferring into the function that needs it.
HEAVY = ("numpy", "pandas", "jax", "textual", "matplotlib", "sklearn", "orbax")
# Optional dependencies, imported where used so fembed works without them; and the one import
# that would be circular at the top (completion builds the parser main builds from it).
DEFERRED_ANYWAY = {"shtab", "ray", "fembed_jax.cli.main"}


def _local_imports(folder: str, package: str) -> dict[str, list[str]]:
    """Module -> the places (file:line) that import it inside a function, in one folder."""
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                names = []
                if isinstance(sub, ast.Import):
                    names = [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    base = sub.module or ""
                    if sub.level:
                        base = package + (f".{base}" if base else "")
                    names = [f"{base}.{a.name}" for a in sub.names]  # a submodule, or a name in base
                    names = [n if _is_module(n) else base for n in names]
                for name in names:
                    out.setdefault(name, []).append(f"{folder}/{path.name}:{sub.lineno}")
    return out


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_commands_defer_only_the_imports_that_are_heavy():
    """An import inside a function of cli/ or tui/ is there to keep start-up light, so it must
    load something heavy; a cheap one belongs at the top of the file, where readers look."""
    from concurrent.futures import ThreadPoolExecutor

    local = {**_local_imports("cli", "fembed_jax.cli")}
    for name, places in _local_imports("tui", "fembed_jax.tui").items():
        local.setdefault(name, []).extend(places)
    candidates = sorted(n for n in local if n not in DEFERRED_ANYWAY and n.split(".")[0] not in HEAVY)

    def loads_heavy(name: str) -> bool:
        code = f"import sys, {name}; print(any(m in sys.modules for m in {HEAVY!r}))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        return result.stdout.strip() == "True"

    with ThreadPoolExecutor(2) as pool:
        heavy = dict(zip(candidates, pool.map(loads_heavy, candidates)))
    cheap = {name: local[name] for name, is_heavy in heavy.items() if not is_heavy}
    assert not cheap, f"cheap modules imported inside functions (move them to the top): {cheap}"


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
