"""Adversarial attacks, one per file, each registering itself with ``@register``; plug-ins by entry point."""
from attacks.base import ATTACKS, Attack, register
from foundation.registry import PLUGIN_GROUPS, PluginError, import_submodules

__all__ = ["ATTACKS", "Attack", "register"]

import_submodules(__name__)


def _register_plugin(name: str, cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise PluginError(f"{cls!r} is not a subclass of attacks.base.Attack")
    if cls.name != name:
        raise PluginError(f"the class declares name {cls.name!r}; name the entry point {cls.name!r}")
    register(cls)


ATTACKS.plugins(PLUGIN_GROUPS["attacks"], _register_plugin)
