"""Re-exporting a package's names lazily (PEP 562), so importing it costs only what is used.

Why ``charter`` needs it is measured in ``charter/__init__.py``'s docstring.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["export_lazily"]


def export_lazily(namespace: MutableMapping[str, Any], sources: Mapping[str, str]) -> None:
    """Give a package a module ``__getattr__`` and ``__dir__`` that serve ``sources`` on use.

    The first read of a name imports its module and stores the value in ``namespace``, so
    later reads are plain global lookups and ``package.Name is module.Name``. ``dir()``,
    ``from package import Name`` and ``from package import *`` (through ``__all__``) all
    see the names before any is read.

    Args:
        namespace: the package's ``globals()``.
        sources: each exported name, mapped to the module that defines it.
    """
    package = namespace["__name__"]
    table = dict(sources)

    def __getattr__(name: str) -> Any:
        try:
            module = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.keys() | table.keys())

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
