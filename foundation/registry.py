"""A tiny name -> object registry, and package discovery.

Each detector, perturbation and attack registers itself in the file that defines it
(``@PERTURBATIONS.register`` on the class). A package's ``__init__`` calls
:func:`import_submodules` so that adding a new file is enough: no second list to edit.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice "
                             f"({self._items[name]!r} and {obj!r})")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")``."""
        def deco(obj: T) -> T:
            return self.add(name, obj)
        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownName(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                              f"known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __len__(self) -> int:
        return len(self._items)


def did_you_mean(name: object, known) -> str:
    """`` (did you mean 'mp3'?)`` for the closest known names (difflib), or '' when none is close."""
    import difflib

    names = [str(k) for k in known]
    text = str(name)
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    close += [k for k in names if k not in close and text.lower() == k.lower()]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close[:3]) + "?)"


def import_submodules(package_name: str) -> None:
    """Import every module (and sub-package) of a package so that they register themselves."""
    pkg = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package_name + "."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_"):
            continue
        importlib.import_module(info.name)
