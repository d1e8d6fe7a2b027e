"""Perturbation families, one per file, each registering itself with ``@register``.

``make("mp3", 3)`` builds a level; ``PERTURBATIONS`` lists the families.
"""
from foundation.registry import PLUGIN_GROUPS, import_submodules, leveled_registrar
from perturbations.base import (PERTURBATIONS, Chain, Context, Identity, Perturbation, ResourceUnavailable,
                                SeverityError, families, make, register, unavailable)

__all__ = ["PERTURBATIONS", "Chain", "Context", "Identity", "Perturbation", "ResourceUnavailable", "SeverityError",
           "families", "make", "register", "unavailable"]

import_submodules(__name__)


PERTURBATIONS.plugins(PLUGIN_GROUPS["perturbations"], leveled_registrar(Perturbation, register))
