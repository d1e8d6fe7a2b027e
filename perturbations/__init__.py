"""Perturbation families, one per file, each registering itself with ``@register``.

``make("mp3", 3)`` builds a level; ``PERTURBATIONS`` lists the families.
"""
from foundation.registry import PLUGIN_GROUPS, PluginError, import_submodules
from perturbations.base import (PERTURBATIONS, Chain, Context, Identity, Perturbation, SeverityError,
                                families, make, register)

__all__ = ["PERTURBATIONS", "Chain", "Context", "Identity", "Perturbation", "SeverityError",
           "families", "make", "register"]

import_submodules(__name__)


def _register_plugin(name: str, cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
        raise PluginError(f"{cls!r} is not a subclass of perturbations.base.Perturbation")
    if cls.family != name:
        raise PluginError(f"the class declares family {cls.family!r}; name the entry point {cls.family!r}")
    register(cls)


PERTURBATIONS.plugins(PLUGIN_GROUPS["perturbations"], _register_plugin)
