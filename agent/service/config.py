"""``/etc/edgebench/agent.yaml``: every ``serve`` option in a file.

Keys are the option names without ``--`` (``token-file``; ``token_file``
works too); the command line overrides the file. Secrets stay in files the
config names (``token-file``, ``tls-key``): a key that would carry a secret
inline (``token``, ``password``...) or a PEM block as a value is refused, so
the config can stay world-readable while the secrets are not.

Every error names the file and line, and is a BadInput (one line, exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from agent.errors import BadInput

DEFAULT_CONFIG = "/etc/edgebench/agent.yaml"
# options that make no sense in the file itself
_NOT_IN_FILE = {"help", "config"}
# names that would put a secret inline; the file names *files* instead
_SECRET_WORDS = ("token", "password", "passwd", "secret", "private", "pem")


def _is_secret_key(key: str) -> bool:
    if key in ("token-file",):
        return False
    return any(word in key for word in _SECRET_WORDS)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``token-file`` -> its action, for every long option of ``parser``."""
    out = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and action.dest not in _NOT_IN_FILE:
                out[opt[2:]] = action
    return out


def _convert(action: argparse.Action, value: Any, where: str, key: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise BadInput(f"{where}: {key} must be true or false, not {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        if isinstance(value, dict):  # meter-opt: {baud: 921600} reads better than a list
            value = [f"{k}={v}" for k, v in value.items()]
        if not isinstance(value, list):
            value = [value]
        return [_one(action, v, where, key) for v in value]
    return _one(action, value, where, key)


def _one(action: argparse.Action, value: Any, where: str, key: str) -> Any:
    if isinstance(value, (dict, list)):
        raise BadInput(f"{where}: {key} takes one value, not a {type(value).__name__}")
    if isinstance(value, bool):
        value = str(value).lower()
    text = str(value)
    if "-----BEGIN" in text:
        raise BadInput(f"{where}: {key} holds a PEM block: put it in a file and give the file's path")
    try:
        converted = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, ValueError, BadInput) as exc:
        raise BadInput(f"{where}: {key}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise BadInput(f"{where}: {key} must be one of {choices}, not {text!r}")
    return converted


def load(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The file's options as ``{dest: value}`` for ``parser.set_defaults``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise BadInput(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or "invalid YAML"
        raise BadInput(f"{path}{line}: not valid YAML: {why}") from None
    if root is None or data is None:
        return {}
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise BadInput(f"{path}:{root.start_mark.line + 1}: expected a mapping of serve options")
    options = _options(parser)
    out: dict[str, Any] = {}
    for key_node, _value_node in root.value:
        raw = key_node.value
        where = f"{path}:{key_node.start_mark.line + 1}"
        key = str(raw).replace("_", "-")
        if _is_secret_key(key):
            raise BadInput(
                f"{where}: {raw!r} would hold a secret inline; name a file instead "
                "(token-file, tls-key) and keep it readable by the agent only"
            )
        action = options.get(key)
        if action is None:
            known = ", ".join(sorted(options))
            raise BadInput(f"{where}: unknown key {raw!r}; serve options are: {known}")
        if action.dest in out:
            raise BadInput(f"{where}: {raw!r} is given twice")
        value = data.get(raw)
        if value is None:
            continue  # `meter:` left empty: the option's default
        out[action.dest] = _convert(action, value, where, key)
    return out
