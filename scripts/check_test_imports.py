"""Fail when a test module imports another test module (``test_*`` or ``conftest``).

Shared builders live in ``tests/support/<topic>.py`` and engine servers in ``tests/servers/``;
a test importing another test's module runs that module's fixtures and tests where nobody looks
for them. The imports come from grimp (the graph import-linter checks), so imports made inside
functions count too.

    python scripts/check_test_imports.py        (from the repository root; exit 1 on a violation)
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def violations(package: str = "tests") -> list[str]:
    graph = grimp.build_graph(package, cache_dir=None)
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if is_test_module(imported):
                for d in graph.get_import_details(importer=importer, imported=imported):
                    found.append(f"{importer}:{d['line_number']}: {d['line_contents']}")
    return found


def main() -> int:
    sys.path.insert(0, str(ROOT))
    found = violations()
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} import(s) of test modules: move what they share to tests/support/<topic>.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
