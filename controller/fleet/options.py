"""A plan job's ``options:`` through the parser of its kind.

The keys are the run options' long names (``duration``, ``input_shape``,
``provider_opt``...). Each becomes the flag the command line would carry and
is parsed by the kind's parser from controller/runopts.py, the same option
definitions the command of that kind uses, so a plan and the CLI accept
exactly the same options with the same types and checks; there is no second
option parser to drift."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent import names
from controller import runopts

# option values that are files on the controller: relative to the plan file
PATH_OPTIONS = {"inputs", "reference", "metric_plugin", "calibration", "validation", "labels", "out_dir"}
# a job's kind: a run kind (the one list), or optimize: quantize on the
# controller, then four runs on the board (controller/optimize.py)
KINDS = (*names.KINDS, "optimize")


class OptionError(ValueError):
    """A bad option: the message names it; ``key`` is the option's key in the plan."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class _Raising(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionError(message)


def command_parser(kind: str) -> argparse.ArgumentParser:
    """The parser of a run of ``kind``: runopts' definitions, as the command has them."""
    if kind == "optimize":
        from controller.optimize_options import add_optimize_options

        p = _Raising(prog="edgebench optimize")
        p.add_argument("model")
        add_optimize_options(p)
        return p
    return runopts.kind_parser(kind, parser_class=_Raising)


def known_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Long option name (dest) -> its action, for every flag a plan may set."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def to_argv(options: dict[str, Any], parser: argparse.ArgumentParser, base: Path) -> list[str]:
    """The command-line flags for a plan's options (OptionError naming a bad key)."""
    known = known_options(parser)
    argv: list[str] = []
    for key, value in options.items():
        dest = str(key).replace("-", "_")
        action = known.get(dest)
        if action is None:
            raise OptionError(f"unknown option {key!r} for this kind", key)
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise OptionError(f"option {key!r} is a switch: true or false", key)
            if value:
                argv.append(flag)
            continue
        for item in _items(value, key):
            if dest in PATH_OPTIONS:
                item = str(base / item)
            argv.append(f"{flag}={item}")  # one token: a value like -5s is no option
    return argv


def _items(value: Any, key: str) -> list[str]:
    """One flag value per item: a list repeats the flag; a mapping gives
    ``K=V`` (``input_shape: {x: 1x3x8x8}``), or ``NAME:K=V`` one level deeper
    (``provider_opt: {openvino: {device_type: CPU}}``)."""
    if value is None:
        raise OptionError(f"option {key!r} has no value", key)
    if isinstance(value, list):
        return [v for item in value for v in _items(item, key)]
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, dict):
                out += [f"{k}:{kk}={vv}" for kk, vv in v.items()]
            elif isinstance(v, (list, tuple)):
                raise OptionError(f"option {key!r}: {k} must be a plain value", key)
            else:
                out.append(f"{k}={v}")
        return out
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


def parse(kind: str, options: dict[str, Any], model: str, base: Path) -> argparse.Namespace:
    """The parsed Namespace of ``edgebench KIND MODEL <options>``: what
    ``controller.specs.build`` turns into the RunSpec."""
    parser = command_parser(kind)
    argv = [model, *to_argv(options, parser, base)]
    if kind == "validate" and "reference" not in options:
        raise OptionError("a validate job needs options: {reference: REF.npz}")
    if kind == "optimize" and not {"calibration", "validation"} <= set(options):
        raise OptionError("an optimize job needs options: {calibration: CAL.npz, validation: VAL.npz}")
    try:
        return parser.parse_args(argv)
    except OptionError as exc:
        raise OptionError(str(exc), _blamed(str(exc), options)) from None


def _blamed(message: str, options: dict[str, Any]) -> str | None:
    # argparse names the flag (--input-shape); find the plan key it came from
    for key in options:
        if f"--{str(key).replace('_', '-')}" in message:
            return key
    return None
