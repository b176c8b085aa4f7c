"""`imaginebuild completion bash|zsh|fish`: shell completion of commands, options, option
values and asset names.

The script is generated from the parser, so it always knows every command and option.
Asset names are asked for when completing, with `imaginebuild completion --assets`
(read from the mediafile's text without parsing it: fast enough to feel instant).
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imaginebuild.cli.context import emit_json, result_line
from imaginebuild.cli.invocation import DEFAULT_MEDIAFILE, LATE, SHELLS, build_parser


@dataclass(frozen=True)
class Option:
    """One option of a command as completion needs it."""

    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Command:
    """One command: its name, help, own options, and whether it takes asset names."""

    name: str
    help: str
    options: tuple[Option, ...]
    takes_assets: bool


def cmd_completion(args: argparse.Namespace) -> int:
    """`completion SHELL` prints the script; `completion --assets` the asset names."""
    if args.assets:
        names = asset_names(args.mediafile)
        if args.json:
            emit_json({"assets": names})
        for name in names if not args.json else ():
            result_line(name)
        return 0
    if args.shell is None:
        from imaginebuild.errors import UsageError

        raise UsageError("name a shell: bash, zsh or fish", hint="imaginebuild completion bash")
    grammar = _grammar(build_parser())
    script = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell](grammar)
    if args.json:
        emit_json({"shell": args.shell, "script": script})
    else:
        result_line(script)
    return 0


def asset_names(mediafile: str | None) -> list[str]:
    """The mediafile's asset names, or none when it cannot be read (completion stays quiet)."""
    path = Path(mediafile or DEFAULT_MEDIAFILE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    from imaginebuild.mediafile.names import quick_asset_names

    names = quick_asset_names(text)
    if names is not None:
        return names
    from imaginebuild.errors import ImaginebuildError
    from imaginebuild.mediafile.load import load_mediafile
    from imaginebuild.model import InputPolicy

    try:  # a matrix or a flow mapping: the real names need the real load
        return list(load_mediafile(path, InputPolicy.from_env(os.environ)).assets)
    except ImaginebuildError:
        return []


def _options(parser: argparse.ArgumentParser, *, late: bool) -> Iterator[Option]:
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.dest.startswith(LATE) != late:
            continue
        yield Option(
            tuple(action.option_strings),
            (action.help or "").replace("\n", " "),
            action.nargs != 0,
            tuple(str(c) for c in action.choices or ()),
        )


def _grammar(parser: argparse.ArgumentParser) -> tuple[tuple[Option, ...], tuple[Command, ...]]:
    """The global options and every command (a command with actions, such as `team`,
    is listed as `team ACTION`'s leaves' union)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    commands = []
    for name, child in sub.choices.items():
        nested = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
        options = list(_options(child, late=False))
        for group in nested:
            for leaf in group.choices.values():
                options += [o for o in _options(leaf, late=False) if o not in options]
        takes_assets = any(a.dest in ("targets", "name") for a in child._actions)
        commands.append(Command(name, helps.get(name, ""), tuple(options), takes_assets))
    global_options = tuple(o for o in _options(parser, late=False) if o.flags[0] != "--version")
    return global_options, tuple(commands)


def _words(options: tuple[Option, ...]) -> str:
    return " ".join(flag for o in options for flag in o.flags)


def _value_flags(options: tuple[Option, ...]) -> str:
    return "|".join(dict.fromkeys(flag for o in options if o.takes_value for flag in o.flags))


def bash_script(grammar: tuple[tuple[Option, ...], tuple[Command, ...]]) -> str:
    """The bash completion function (also used by zsh through bashcompinit)."""
    global_options, commands = grammar
    everything = tuple(dict.fromkeys((*global_options, *(o for c in commands for o in c.options))))
    value_flags = _value_flags(everything) or "--"
    cases = []
    for c in commands:
        subcommands = {"team": " set status", "completion": " " + " ".join(SHELLS)}.get(c.name, "")
        cases.append(
            f"    {c.name}) opts={shlex.quote(_words(c.options) + subcommands)}; "
            f"assets={1 if c.takes_assets else 0} ;;"
        )
    choices = [
        f"    {'|'.join(o.flags)}) COMPREPLY=($(compgen -W {shlex.quote(' '.join(o.choices))} "
        '-- "$cur")); return ;;'
        for o in everything
        if o.choices
    ]
    return BASH_TEMPLATE.format(
        commands=shlex.quote(" ".join(c.name for c in commands)),
        global_words=shlex.quote(_words(global_options)),
        value_flags=value_flags,
        cases="\n".join(cases),
        choices="\n".join(choices),
    )


BASH_TEMPLATE = """\
# imaginebuild completion for bash: eval "$(imaginebuild completion bash)"
_imaginebuild() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
  local cmd="" i opts="" assets=0
  local -a where=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${{COMP_WORDS[i]}} in
      -f|--file|-C|--directory) where+=("${{COMP_WORDS[i]}}" "${{COMP_WORDS[i+1]}}"); ((i++)) ;;
      {value_flags}) ((i++)) ;;
      -*) ;;
      *) [[ -z $cmd ]] && cmd=${{COMP_WORDS[i]}} ;;
    esac
  done
  case $prev in
{choices}
    -f|--file|-o|--output) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -C|--directory|--allow-read) COMPREPLY=($(compgen -d -- "$cur")); return ;;
  esac
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W {global_words} -- "$cur"))
    else
      COMPREPLY=($(compgen -W {commands} -- "$cur"))
    fi
    return
  fi
  case $cmd in
{cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts "{global_words} -- "$cur"))
  elif ((assets)); then
    local names
    names=$(command imaginebuild "${{where[@]}}" completion --assets 2>/dev/null)
    COMPREPLY=($(compgen -W "$names" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  fi
}}
complete -o default -F _imaginebuild imaginebuild"""


def zsh_script(grammar: tuple[tuple[Option, ...], tuple[Command, ...]]) -> str:
    """The zsh completion: the bash function through zsh's bashcompinit."""
    body = bash_script(grammar).split("\n", 1)[1]
    return (
        '# imaginebuild completion for zsh: eval "$(imaginebuild completion zsh)"\n'
        "autoload -U +X compinit && compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + body
    )


def fish_script(grammar: tuple[tuple[Option, ...], tuple[Command, ...]]) -> str:
    """The fish completion: `complete` lines per command and option."""
    global_options, commands = grammar
    lines = [
        "# imaginebuild completion for fish: imaginebuild completion fish | source",
        "complete -c imaginebuild -f",
    ]
    names = " ".join(c.name for c in commands)
    lines += [_fish_option(o, None) for o in global_options]
    for c in commands:
        lines.append(
            f"complete -c imaginebuild -n 'not __fish_seen_subcommand_from {names}' "
            f"-a {c.name} -d {shlex.quote(c.help)}"
        )
        lines += [_fish_option(o, c.name) for o in c.options]
        words = {"team": "set status", "completion": " ".join(SHELLS)}.get(c.name)
        if words:
            lines.append(
                f"complete -c imaginebuild -n '__fish_seen_subcommand_from {c.name}' -a '{words}'"
            )
    with_assets = " ".join(c.name for c in commands if c.takes_assets)
    lines.append(
        f"complete -c imaginebuild -n '__fish_seen_subcommand_from {with_assets}' "
        "-a '(imaginebuild completion --assets 2>/dev/null)'"
    )
    return "\n".join(lines)


def _fish_option(option: Option, command: str | None) -> str:
    parts = ["complete -c imaginebuild"]
    if command is not None:
        parts.append(f"-n '__fish_seen_subcommand_from {command}'")
    for flag in option.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if option.choices:
        parts.append(f"-x -a {shlex.quote(' '.join(option.choices))}")
    elif option.takes_value:
        parts.append("-r")
    parts.append(f"-d {shlex.quote(option.help)}")
    return " ".join(parts)
