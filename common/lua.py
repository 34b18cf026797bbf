"""Redis Lua scripts: `.lua` files in a `lua/` folder beside the module that
loads them, so they can be read, highlighted and linted as Lua."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def lua_script(package: str, name: str) -> str:
    """The source of `<package>/lua/<name>.lua` (shipped in the wheel)."""
    return files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
