"""A tiny name -> object registry, and package discovery.

Each detector, perturbation and attack registers itself in the file that defines it
(``@PERTURBATIONS.register`` on the class). A package's ``__init__`` calls
:func:`import_submodules` so that adding a new file is enough: no second list to edit.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class UnknownName(KeyError):
    """A name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._plugins: tuple[str, Callable[[str, object], None]] | None = None

    def plugins(self, group: str, register: Callable[[str, object], None]) -> None:
        """Entry points of ``group`` are registered through ``register(name, obj)`` on the first lookup.

        Lazily, not at import: a plug-in module imports the package whose registry it joins, and loading it
        while that package is still importing would be an import circle."""
        self._plugins = (group, register)

    def _load_plugins(self) -> None:
        if self._plugins is not None:
            group, register = self._plugins
            self._plugins = None   # first: a plug-in that looks names up while loading sees the built-ins
            load_plugins(group, register, self)

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
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownName(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                              f"known: {known}") from None

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._load_plugins()
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        self._load_plugins()
        return sorted(self._items.items())

    def __len__(self) -> int:
        self._load_plugins()
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


#: entry-point groups through which other installed distributions add to the registries
PLUGIN_GROUPS = {"perturbations": "deepfake_bench.perturbations", "attacks": "deepfake_bench.attacks",
                 "detectors": "deepfake_bench.detectors"}


class PluginError(RuntimeError):
    """A plug-in that cannot be registered; the message names the entry point and its distribution."""


def load_plugins(group: str, register: Callable[[str, object], None], registry: "Registry") -> list[str]:
    """Registers every entry point ``name = module:Class`` of ``group`` through ``register(name, cls)``.

    A plug-in whose name is already taken (a built-in, or another plug-in) is refused: it is logged as an
    error naming both and skipped, so one bad distribution cannot take the others down. An entry point
    that fails to import is logged and skipped likewise. Returns the names registered.
    """
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=group):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed distribution"
        where = f"plug-in {ep.name!r} ({ep.value}, from {dist}, entry-point group {group})"
        if ep.name in registry:
            log.error("%s refused: the name is already registered to %r; rename the entry point",
                      where, registry.get(ep.name))
            continue
        try:
            obj = ep.load()
            register(ep.name, obj)
        except Exception as e:  # noqa: BLE001 - a broken plug-in is reported, never fatal to the others
            log.error("%s could not be registered: %s: %s", where, type(e).__name__, e)
            continue
        added.append(ep.name)
    return added


def leveled_registrar(base: type, register: Callable[[type], object]) -> Callable[[str, object], None]:
    """The plug-in check of perturbation families and attacks: a subclass of ``base`` whose declared name
    (``registered_name()``) is the entry point's, registered with ``register``."""
    def _register(name: str, cls: object) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{cls!r} is not a subclass of {base.__module__}.{base.__qualname__}")
        declared = cls.registered_name()
        if declared != name:
            raise PluginError(f"the class declares the name {declared!r}; name the entry point {declared!r}")
        register(cls)
    return _register
