"""``export_lazily``: a package's names served on first read, then plain globals."""

from __future__ import annotations

import decimal
import fractions
import sys
from types import ModuleType
from typing import Any

import pytest

from charter.core.lazy import export_lazily


def lazy_package() -> ModuleType:
    package = ModuleType("pkg")
    export_lazily(vars(package), {"Fraction": "fractions", "Decimal": "decimal"})
    return package


def test_a_name_is_served_from_its_module_and_then_stored() -> None:
    package = lazy_package()
    assert "Fraction" not in vars(package)
    assert package.Fraction is fractions.Fraction
    assert vars(package)["Fraction"] is fractions.Fraction
    assert "Decimal" not in vars(package)  # reading one name does not import the others


def test_from_import_and_dir_see_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    package = lazy_package()
    monkeypatch.setitem(sys.modules, "pkg", package)
    namespace: dict[str, Any] = {}
    exec("from pkg import Decimal", namespace)
    assert namespace["Decimal"] is decimal.Decimal
    assert {"Decimal", "Fraction"} <= set(dir(package))


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    package = lazy_package()
    with pytest.raises(AttributeError, match=r"^module 'pkg' has no attribute 'Nope'$"):
        package.Nope  # noqa: B018


def test_a_name_its_module_lacks_is_an_attribute_error() -> None:
    package = ModuleType("pkg")
    export_lazily(vars(package), {"Missing": "fractions"})
    with pytest.raises(AttributeError, match="Missing"):
        package.Missing  # noqa: B018
