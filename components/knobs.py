"""Config fields that carry their own help text, and the command-line flags made from them."""

import argparse
import dataclasses
import shlex
from typing import Optional

# The dataclass field metadata key holding a field's help text.
HELP = "help"


def knob(default, help_text: str):
    """A frozen-dataclass field with a default and the help text of its flag."""
    return dataclasses.field(default=default, metadata={HELP: help_text})


def parser_for(field_type):
    """argparse ``type`` for a field type; None means a boolean switch."""
    if field_type is bool:
        return None
    if field_type in (int, float, str):
        return field_type
    if field_type == Optional[int]:
        return lambda value: None if value.lower() == "none" else int(value)
    if field_type == Optional[str]:
        return lambda value: None if value.lower() == "none" else value
    if field_type == tuple[str, ...]:
        return lambda value: tuple(shlex.split(value))
    raise TypeError(f"No flag parser for config field type {field_type}")


def add_flag(parser: argparse.ArgumentParser, flag: str, dest: str, field_type, help_text: str) -> None:
    """``--flag`` for a field of ``field_type`` (``--flag``/``--no-flag`` for a bool),
    stored in ``dest``; None when not given, so a flag only overrides when it is."""
    parse = parser_for(field_type)
    if parse is None:
        parser.add_argument(f"--{flag}", dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    else:
        metavar = flag.upper().replace("-", "_")
        parser.add_argument(f"--{flag}", dest=dest, type=parse, default=None, metavar=metavar, help=help_text)
