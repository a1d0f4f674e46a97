"""Config fields that carry their own help text, shown by the runner's flags."""

import dataclasses

# The dataclass field metadata key holding a field's help text.
HELP = "help"


def knob(default, help_text: str):
    """A frozen-dataclass field with a default and the help text of its flag."""
    return dataclasses.field(default=default, metadata={HELP: help_text})
