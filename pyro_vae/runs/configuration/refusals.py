"""Hydra's composition errors (an unknown key, a value of the wrong type, an unknown group option,
an override it cannot parse) worded as the project's one-line refusals: the setting, the value and
what it accepts. ``run.py`` prints them and exits with status 2; ``compose_config`` raises them as
``ConfigError``. Both word them with ``composition_refusal``."""

import difflib
import logging
import re
from dataclasses import fields, is_dataclass
from typing import Any, Iterable, List, Optional, Sequence

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from omegaconf.nodes import BooleanNode, EnumNode, FloatNode, IntegerNode, StringNode

from ...errors import ConfigError
from .commands import run_py
from .schema import OPTIONS

# Hydra's own console format: the refusals of run.py's task function look the same.
LINE_FORMAT = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")


def refusal_line(message: str) -> str:
    """``message`` as run.py prints a refusal: ``[TIME][pyro_vae][ERROR] - MESSAGE``."""
    record = logging.LogRecord("pyro_vae", logging.ERROR, __file__, 0, "%s", (message,), None)
    return LINE_FORMAT.format(record)


def composition_refusal(error: BaseException, overrides: Sequence[str] = ()) -> Optional[str]:
    """The one-line refusal of a composition error raised by Hydra for ``overrides`` (the command
    line), or None when ``error`` is not one (it is then a bug or an error of the run itself)."""
    if isinstance(error, OverrideParseException):
        reason = _one_line(error.message).replace("See https", "see https")
        return f"{error.override}: not an override Hydra can read ({reason})"
    if isinstance(error, MissingConfigException):
        return _unknown_choice(error, overrides)
    if not isinstance(error, ConfigCompositionException):
        return None
    message = str(error)
    cause = error.__cause__ or error.__context__
    ambiguous = re.match(r"Ambiguous value for argument '(.*)'", message)
    if ambiguous:
        line = ambiguous.group(1)
        return f"{line}: a comma sweeps over values only in a multirun ({run_py('-m')} ...); a list is [a,b]"
    unknown = r"Could not override '.*'\.\nTo append to your config use \+"
    line = re.match(f"(?:{unknown}|Error merging override )(.*)", message)
    if line and isinstance(cause, OmegaConfBaseException):
        return _bad_override(line.group(1), cause)
    in_file = re.match(r"In '(.*?)': \w+ raised while composing config", message)
    if in_file and isinstance(cause, OmegaConfBaseException):
        value = getattr(cause, "value", None)
        subject = f"{in_file.group(1)}.yaml: {cause.full_key}" + ("" if value is None else f"={value}")
        return _bad_key_or_value(subject, cause.full_key, cause)
    return _one_line(message)


def check_against_schema(cfg: DictConfig, prefix: str = "") -> None:
    """Raise ConfigError for what Hydra lets past the schema: a key it does not declare (added by
    ``+key=value``), a declared key removed (``~key``) or left without a value (``key=???``)."""
    schema = cfg._metadata.object_type
    if not (isinstance(schema, type) and is_dataclass(schema)):
        return
    declared = [f.name for f in fields(schema)]
    for key in declared:
        if cfg._get_node(key, validate_access=False) is None:
            raise ConfigError(f"~{prefix}{key}: {prefix}{key} cannot be removed; every run reads it")
    for key in cfg.keys():
        node = cfg._get_node(key)
        if key not in declared and "_target_" not in declared:  # where it is, its target's signature checks it
            where = _where(cfg, prefix.rstrip("."))
            subject = f"{prefix}{key}={_text(node)}"
            raise ConfigError(unknown_setting(subject, f"{prefix}{key}", _settings_of(cfg), where))
        if node._is_missing():
            raise ConfigError(f"{prefix}{key}=???: needs a value")
        if isinstance(node, DictConfig) and not node._is_none():
            check_against_schema(node, f"{prefix}{key}.")


def unknown_setting(subject: str, full_key: str, settings: Iterable[str], where: str = "") -> str:
    """``SUBJECT: no such setting`` with the closest declared one, or all of them (``where`` names
    the node that holds them, e.g. ``optimizer=adam``)."""
    parent, _, name = full_key.rpartition(".")
    settings = sorted(str(s) for s in settings)
    prefix = f"{parent}." if parent else ""
    close = difflib.get_close_matches(name, settings, n=1)
    if close:
        return f"{subject}: no such setting; did you mean {prefix}{close[0]}?"
    where = f"of {where or parent}" if parent else "at the top level"
    return f"{subject}: no such setting; the settings {where} are {', '.join(settings)}"


def _where(node: DictConfig, key: str) -> str:
    """``GROUP=OPTION`` for the node of a config group (its settings depend on the option), else ``key``."""
    if key in OPTIONS and isinstance(node.get("name"), str):
        return f"{key}={node.name}"
    return key


def _bad_override(line: str, cause: OmegaConfBaseException) -> str:
    key = line.split("=", 1)[0].lstrip("+~")
    return _bad_key_or_value(line, key, cause)


def _bad_key_or_value(subject: str, key: str, cause: OmegaConfBaseException) -> str:
    parent = getattr(cause, "parent_node", None)
    full_key = str(getattr(cause, "full_key", "") or key)
    if isinstance(cause, (ConfigKeyError, AttributeError)) and isinstance(parent, DictConfig):
        where = _where(parent, full_key.rpartition(".")[0])
        return unknown_setting(subject, full_key, _settings_of(parent), where)
    if isinstance(cause, ValidationError) and parent is not None:
        node = _find(parent._get_root(), key)
        if node is not None:
            return f"{subject}: {_accepted(node, key)}"
        if key.startswith(f"{full_key}."):
            return f"{subject}: {full_key} is a single value, with no settings under it"
    return f"{subject}: {(getattr(cause, 'msg', None) or str(cause)).splitlines()[0].strip()}"


def _unknown_choice(error: MissingConfigException, overrides: Sequence[str]) -> str:
    missing = error.missing_cfg_file or ""
    options = sorted(error.options or [])
    if not options or "/" not in missing:
        return _one_line(str(error).split("\nConfig search path:")[0])
    for override in overrides:
        key, equals, value = override.partition("=")
        if equals and f"{key.lstrip('+~').split('@')[0]}/{value}" == missing:
            break
    else:
        key, _, value = missing.rpartition("/")
    return f"{key}={value}: unknown choice; choose one of {', '.join(options)}"


def _settings_of(node: DictConfig) -> List[str]:
    """The settings a refusal lists: the schema's, less Hydra's own keys (``_target_``, ``_partial_``)."""
    schema = node._metadata.object_type
    if isinstance(schema, type) and is_dataclass(schema):
        return [f.name for f in fields(schema) if not f.name.startswith("_")]
    return [str(k) for k in node.keys()]


def _find(root: Any, key: str) -> Any:
    """The node at dotted ``key`` below ``root``, or None."""
    node = root
    for part in key.split("."):
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing() or part not in node:
            return None
        node = node._get_node(part)
    return node


def _accepted(node: Any, key: str) -> str:
    """What a setting accepts, from the type its schema gives it."""
    if isinstance(node, ListConfig):
        element = node._metadata.element_type
        kind = {int: "integers", float: "numbers", str: "strings"}.get(element, "values")
        if node._is_none() or node._is_missing() or node._is_interpolation() or len(node) == 0:
            example = {int: "[0,1]", float: "[0.5,1.5]"}.get(element, "[a,b]")
        else:
            example = "[" + ",".join(str(item) for item in node) + "]"
        accepted = f"must be a list of {kind}, e.g. {example}"
    elif isinstance(node, DictConfig):
        names = ", ".join(f"{key}.{name}" for name in _settings_of(node))
        return f"not a value but a group of settings; set {names}"
    elif isinstance(node, EnumNode):
        accepted = f"choose one of {', '.join(member.value for member in node._metadata.ref_type)}"
    else:
        accepted = {
            IntegerNode: "must be an integer",
            FloatNode: "must be a number",
            BooleanNode: "must be true or false",
            StringNode: "must be a string",
        }.get(type(node), "has the wrong type")
    return accepted + (", or null" if node._is_optional() else "")


def _text(node: Any) -> str:
    value = node._value() if node is not None else None
    if isinstance(value, (DictConfig, ListConfig)):
        return str(value)
    return "null" if value is None else str(value)


def _one_line(message: str) -> str:
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
