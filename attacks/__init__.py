"""Adversarial attacks (gradient and black box), one per file, each registering itself with ``@register``;
plug-ins by entry point."""
from attacks.base import ATTACKS, Attack, register
from foundation.registry import PLUGIN_GROUPS, import_submodules, leveled_registrar

__all__ = ["ATTACKS", "Attack", "register"]

import_submodules(__name__)


ATTACKS.plugins(PLUGIN_GROUPS["attacks"], leveled_registrar(Attack, register))
