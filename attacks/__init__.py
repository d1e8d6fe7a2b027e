"""Adversarial attacks (gradient and black box), one per file, each registering itself with ``@register``."""
from attacks.base import ATTACKS, Attack, register
from foundation.registry import import_submodules

__all__ = ["ATTACKS", "Attack", "register"]

import_submodules(__name__)
