"""Synopses of the commands, generated from their click parameters (for the README).

``python -m netpolgen.cli.synopsis`` prints them; ``tests/cli/test_readme.py`` checks that the
README's "Commands" section shows exactly these, so a new option cannot go undocumented.
"""

from __future__ import annotations

import click

WIDTH = 100


def _value(option: click.Option) -> str:
    """What follows an option's flag: its choices, or its metavar, or a word for its type."""
    if isinstance(option.type, click.Choice):
        return "|".join(str(c) for c in option.type.choices)
    if option.metavar:
        return option.metavar
    if isinstance(option.type, click.types.IntRange | click.types.FloatRange):
        return "N" if isinstance(option.type, click.types.IntRange) else "X"
    if isinstance(option.type, click.Path):
        return "PATH"
    return (option.name or "value").upper()


def option_synopsis(option: click.Option) -> str:
    """``[-f auto|csv]``, ``--policies PATH``, ``[-i PATH]...``, ``[--egress/--no-egress]``."""
    flag = min(option.opts, key=len)  # the short flag where there is one
    if option.is_flag and option.secondary_opts:
        text = "/".join([max(option.opts, key=len), *option.secondary_opts])
    elif option.is_flag or option.count:
        text = flag
    else:
        text = f"{flag} {_value(option)}"
    text = text if option.required else f"[{text}]"
    return text + ("..." if option.multiple or option.count else "")


def synopsis(name: str, command: click.Command) -> str:
    """``netpolgen NAME ARGUMENTS [options]``, wrapped at 100 columns under the name."""
    words = []
    for param in command.params:
        if isinstance(param, click.Argument):
            metavar = param.make_metavar(click.Context(command))
            words.append(metavar)
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            words.append(option_synopsis(param))
    head = f"netpolgen {name}"
    lines = [head]
    for word in words:  # wrap between options, never inside one
        if len(lines[-1]) + 1 + len(word) > WIDTH and lines[-1].strip():
            lines.append(" " * len(head))
        lines[-1] += " " + word
    return "\n".join(lines)


def synopses(group: click.Group) -> dict[str, str]:
    """Every command's synopsis, by name."""
    return {name: synopsis(name, group.commands[name]) for name in sorted(group.commands)}


if __name__ == "__main__":
    from netpolgen.cli import cli

    for text in synopses(cli).values():
        print(text)
        print()
