"""The package uses only the public API of its libraries.

Those are marshmallow, requests and urllib3, and prometheus_client and
opentelemetry (optional: read when installed).

A private name (``Schema._do_load``, ``HTTPAdapter``'s internals) may change in
any minor release of a dependency and turn every webhook into a 500. This
reads the package's source, not its behaviour: every attribute it touches,
every name it imports and every method it overrides is checked against the
private names the libraries define (read from their installed source)
and against the few public-looking adapter methods requests documents as
not for user code.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import cel_whatsapp

PACKAGE = Path(cel_whatsapp.__file__).parent
#: The optional ones (metrics, traces) are read when installed, as the test extra does.
OPTIONAL_LIBRARIES = ("prometheus_client", "opentelemetry")
LIBRARIES = ("marshmallow", "requests", "urllib3", *OPTIONAL_LIBRARIES)

#: Public-looking names the libraries document as internal ("This should not
#: be called from user code"), or helpers of requests' own plumbing.
NOT_FOR_USER_CODE = frozenset(
    {
        "get_connection_with_tls_context",
        "get_connection",
        "build_connection_pool_key_attributes",
        "cert_verify",
        "build_response",
        "request_url",
        "select_proxy",
        "extract_cookies_to_jar",
    }
)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _library_files(library: str) -> Iterator[Path]:
    spec = importlib.util.find_spec(library)
    if spec is None and library in OPTIONAL_LIBRARIES:
        return
    assert spec is not None and spec.submodule_search_locations, library
    for location in spec.submodule_search_locations:
        yield from Path(location).rglob("*.py")


def _defined_names(tree: ast.AST) -> Iterator[str]:
    """Names a module defines: functions, classes, assignments and attributes it sets."""
    for node in ast.walk(tree):
        yield from _defined_names_here(node)


def _defined_names_here(node: ast.AST) -> Iterator[str]:
    """The name ``node`` itself defines, if any (not those of its children)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id
    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
        yield node.attr
    elif isinstance(node, ast.arg):
        yield node.arg


def library_private_names() -> frozenset[str]:
    """Every single-underscore name the three libraries define anywhere in their source."""
    names: set[str] = set()
    for library in LIBRARIES:
        for path in _library_files(library):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names.update(name for name in _defined_names(tree) if _is_private(name))
    return frozenset(names)


@dataclass(frozen=True)
class Finding:
    where: str
    what: str


def _library_classes(tree: ast.AST) -> set[str]:
    """Classes of this module that derive from a class of the libraries, directly or not."""
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            imported.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(
                (alias.asname or alias.name).split(".")[0]
                for alias in node.names
                if alias.name.split(".")[0] in LIBRARIES
            )
    derived: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name not in derived:
                for base in node.bases:
                    root = base
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name) and (root.id in imported or root.id in derived):
                        derived.add(node.name)
                        changed = True
                        break
    return derived


def findings(
    source: str, filename: str, private: frozenset[str], ours: frozenset[str]
) -> list[Finding]:
    """What ``source`` does with the libraries' private names or internal modules.

    ``ours`` are the private names the package itself defines: ``self._lock``
    is ours even if urllib3 also has a ``_lock``. A method of a subclass of a
    library's class that overrides a private name (``def _deserialize`` in a
    ``Field`` subclass) is reported: that is the library's name, reached by
    subclassing.
    """
    found: list[Finding] = []
    tree = ast.parse(source)
    library_classes = _library_classes(tree)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            modules = [module] if module else [alias.name for alias in node.names]
            for name in modules:
                parts = (name or "").split(".")
                if parts[0] in LIBRARIES and any(_is_private(part) for part in parts):
                    found.append(Finding(where, f"imports the private module {name}"))
            if module and module.split(".")[0] in LIBRARIES:
                for alias in node.names:
                    if _is_private(alias.name) or alias.name in NOT_FOR_USER_CODE:
                        found.append(Finding(where, f"imports {alias.name} from {module}"))
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if name in NOT_FOR_USER_CODE or (name in private and name not in ours):
                found.append(Finding(where, f"touches .{name}"))
        elif isinstance(node, ast.ClassDef) and node.name in library_classes:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (
                    item.name in private or item.name in NOT_FOR_USER_CODE
                ):
                    found.append(
                        Finding(f"{filename}:{item.lineno}", f"overrides {node.name}.{item.name}")
                    )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
            if name in NOT_FOR_USER_CODE or (name in private and name not in ours):
                found.append(Finding(where, f"{node.func.id}(..., {name!r})"))
    return found


def _package_sources() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def private() -> frozenset[str]:
    names = library_private_names()
    # The libraries are read, not imported: a handful of well-known names must be there.
    assert {"_do_load", "_deserialize", "_hooks", "_get_conn", "_original_response"} <= names
    return names


@pytest.fixture(scope="module")
def ours(private: frozenset[str]) -> frozenset[str]:
    """Private names the package defines for itself (methods, attributes, variables)."""
    names: set[str] = set()
    for _, source in _package_sources():
        tree = ast.parse(source)
        library_classes = _library_classes(tree)
        overrides = {
            id(item)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.name in library_classes
            for item in node.body
            if isinstance(item, ast.FunctionDef) and item.name in private
        }
        for node in ast.walk(tree):
            if id(node) not in overrides:
                names.update(n for n in _defined_names_here(node) if _is_private(n))
    return frozenset(names)


def test_the_package_touches_no_private_name_of_its_libraries(
    private: frozenset[str], ours: frozenset[str]
) -> None:
    found = [
        f for name, source in _package_sources() for f in findings(source, name, private, ours)
    ]
    assert not found, "\n".join(f"{f.where}: {f.what}" for f in found)


@pytest.mark.parametrize(
    "source",
    [
        "schema._do_load(data)",
        "for key in schema._hooks: pass",
        "self.adapter.get_connection_with_tls_context(request, verify)",
        "response.raw._original_response",
        "from urllib3._collections import HTTPHeaderDict",
        "import requests._internal_utils",
        "from requests.utils import select_proxy",
        "getattr(schema, '_declared_fields')",
        "from marshmallow import fields\n"
        "class UnixTime(fields.Field):\n    def _deserialize(self, value, attr, data, **kw): ...",
        "from requests.adapters import HTTPAdapter\n"
        "class Quick(HTTPAdapter):\n    def build_response(self, req, resp): ...",
        "from opentelemetry.context import _RUNTIME_CONTEXT",
        "from prometheus_client import multiprocess\nmultiprocess._accumulate_metrics(m, True)",
    ],
)
def test_the_check_catches_private_use(private: frozenset[str], source: str) -> None:
    assert findings(source, "sample.py", private, frozenset())


def test_the_check_leaves_public_use_alone(private: frozenset[str]) -> None:
    public = (
        "from marshmallow import Schema, fields, post_load\n"
        "from requests import Session\n"
        "session.send(prepared, timeout=5, allow_redirects=False)\n"
        "schema.load(data)\n"
        "prepared.copy().prepare_body(None, None, json=payload)\n"
    )
    assert findings(public, "sample.py", private, frozenset()) == []
