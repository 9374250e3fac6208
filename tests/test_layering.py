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
