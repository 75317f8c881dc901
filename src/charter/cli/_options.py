"""Typer options built from a config dataclass's fields (help, flags, defaults written once)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import typer


def _cli_type(hint: Any, path: bool) -> tuple[Any, bool]:
    """The annotation typer reads for a config field's type hint, and whether it is multi-valued."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner, many = _cli_type(next(a for a in args if a is not type(None)), path)
        return (inner if many else Optional[inner]), many
    if origin is tuple:
        return list[Path if path else args[0]], True
    if origin is typing.Literal:  # the config's validate() names the choices
        return type(args[0]), False
    return (Path if path else hint), False


def _to_config(value: Any, many: bool, path: bool) -> Any:
    if value is None:
        return None
    if many:
        return tuple(str(v) if path else v for v in value)
    return str(value) if path else value


def config_command(config_cls: type):
    """Decorate ``fn(cfg, **extra)``: the command takes one option per CLI field of ``config_cls``
    (in field order) followed by ``fn``'s own options, and calls ``fn`` with the built config.

    ``fn``'s parameters before ``cfg`` (arguments, say) come before the config's options; ``cfg``
    is the parameter annotated with ``config_cls``, else the first."""
    hints = typing.get_type_hints(config_cls)
    fields = [f for f in dataclasses.fields(config_cls) if f.metadata.get("cli", True)]

    def decorate(fn):
        params, conv = [], {}
        for f in fields:
            meta = f.metadata
            path = meta.get("path", False)
            annotation, many = _cli_type(hints[f.name], path)
            if f.default is not dataclasses.MISSING:
                default = list(f.default) if many else f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = list(f.default_factory())
            else:
                default = ...
            flags = meta.get("flags") or ("--" + f.name.replace("_", "-"),)
            opt = typer.Option(default, *flags, help=meta.get("help") or None)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=annotation))
            conv[f.name] = (many, path)
        own = list(inspect.signature(fn, eval_str=True).parameters.values())
        at = next((i for i, p in enumerate(own) if p.annotation is config_cls), 0)
        cfg_name = own[at].name
        before = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at]]
        params = before + params + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1 :]]

        @functools.wraps(fn)
        def command(**kwargs):
            cfg = config_cls(**{name: _to_config(kwargs.pop(name), *conv[name]) for name in conv})
            return fn(**{cfg_name: cfg}, **kwargs)

        del command.__wrapped__  # typer must read the built signature, not fn's
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {}
        return command

    return decorate
