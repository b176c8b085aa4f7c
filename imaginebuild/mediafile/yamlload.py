"""YAML with locations: read a mediafile's text, then parse it into plain data plus marks.

`read_source` is the only function here that touches the filesystem; `compose`
and `parse_yaml` are pure. Parsing uses the safe loader's composer only, so no
YAML tag ever constructs a Python object, and converts the node graph by hand:
that keeps the line and column of every key and value, reports duplicate keys
(which YAML silently lets the last one win), and stops alias bombs ("billion
laughs") by counting the nodes it visits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imaginebuild.errors import Diagnostic, MediafileError, UsageError
from imaginebuild.model import Mark

JsonPath = tuple[str | int, ...]

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000  # a real mediafile has a few hundred; aliases must not expand past this
MAX_DEPTH = 64  # a mediafile is a few levels deep; this keeps conversion off the C stack's edge

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


def format_path(path: JsonPath) -> str:
    """Render a JSON path as users read it: `assets.sketch.inputs[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += part if not text else f".{part}"
    return text


@dataclass
class Parsed:
    """The result of parsing: plain data, marks of values and keys, and any problems."""

    filename: str
    data: object = None
    marks: dict[JsonPath, Mark] = field(default_factory=dict)
    key_marks: dict[JsonPath, Mark] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # expanded asset → its matrix template
    merged: set[JsonPath] = field(default_factory=set)  # mappings with a refused `<<` key

    def mark(self, path: JsonPath, *, key: bool = False) -> Mark:
        """The mark of the node at `path` (its key when `key`), else its nearest ancestor's.

        A path into an asset expanded from a matrix template is located in the template.
        """
        if self.aliases and len(path) > 1 and path[0] == "assets" and path[1] in self.aliases:
            path = ("assets", self.aliases[str(path[1])], *path[2:])
        probe = path
        while True:
            found = (self.key_marks.get(probe) if key else None) or self.marks.get(probe)
            if found is not None or not probe:
                break
            probe = probe[:-1]
        return found or Mark(self.filename, 1, 1)


def read_source(path: Path, display: str) -> str:
    """Read a mediafile's text; OS and encoding failures become located diagnostics.

    A missing file is a `UsageError` (the command line named the wrong file);
    anything else unreadable is a `MediafileError` at line 1, column 1.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"{display}: no such mediafile", hint="create one with `imaginebuild init`"
        ) from None
    except IsADirectoryError:
        raise _unreadable(display, "is a folder, not a mediafile") from None
    except OSError as exc:
        raise _unreadable(display, f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise _unreadable(display, f"is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if b"\x00" in raw:
        raise _unreadable(display, "is a binary file, not YAML text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _unreadable(
            display,
            f"is not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start})",
        ) from None


def _unreadable(display: str, what: str) -> MediafileError:
    return MediafileError([Diagnostic(display, 1, 1, "", f"the mediafile {what}")])


def parse_yaml(text: str, filename: str) -> tuple[object, dict[JsonPath, Mark]]:
    """Parse YAML text into plain data and the mark of every value node by JSON path.

    Raises `MediafileError` with every problem found (syntax, duplicate keys,
    non-string keys, unsupported tags, alias bombs).
    """
    parsed = compose(text, filename)
    if parsed.diagnostics:
        raise MediafileError(parsed.diagnostics)
    return parsed.data, parsed.marks


def compose(text: str, filename: str) -> Parsed:
    """Parse YAML text, collecting problems instead of raising; data is None on syntax errors."""
    parsed = Parsed(filename)
    try:
        root = yaml.compose(text, Loader=_Loader)  # safe: composer only
    except yaml.MarkedYAMLError as exc:
        parsed.diagnostics.append(_syntax_diagnostic(exc, text, filename))
        return parsed
    except yaml.reader.ReaderError as exc:
        parsed.diagnostics.append(_reader_diagnostic(exc, text, filename))
        return parsed
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        parsed.diagnostics.append(Diagnostic(filename, 1, 1, "", f"invalid YAML: {exc}"))
        return parsed
    if root is None:
        parsed.diagnostics.append(
            Diagnostic(filename, 1, 1, "", "the mediafile is empty", hint="start with `version: 1`")
        )
        return parsed
    converter = _Converter(parsed, filename)
    try:
        parsed.data = converter.convert(root, ())
    except _TooLarge as exc:
        parsed.diagnostics.append(exc.diagnostic)
        parsed.data = None
    return parsed


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, text: str, filename: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    lines = text.splitlines()
    at = lines[line - 1][column - 1 : column] if line <= len(lines) else ""
    if at == "\t" or "\\t" in (exc.problem or ""):
        return Diagnostic(
            filename, line, column, "",
            "YAML syntax error: a tab character where YAML expects spaces",
            hint="YAML indents with spaces; replace the tabs",
        )  # fmt: skip
    problem = exc.problem or "invalid YAML"
    if exc.context:
        problem = f"{problem} ({exc.context})"
    hint = None
    indexed = _UNQUOTED_INDEX.search(lines[line - 1]) if line <= len(lines) else None
    if indexed is not None:
        ref = indexed.group(1)
        hint = f'quote an indexed reference inside [...]: ["{ref}"]'
    return Diagnostic(filename, line, column, "", f"YAML syntax error: {problem}", hint=hint)


# `[hero[1]]` or `[a, hero[1]]`: an unquoted NAME[i] in a flow list, which YAML cannot read.
_UNQUOTED_INDEX = re.compile(r"[\[,]\s*([A-Za-z_][A-Za-z0-9_-]*\[\d+\])")


def _reader_diagnostic(exc: yaml.reader.ReaderError, text: str, filename: str) -> Diagnostic:
    """A character YAML does not allow, located by its own line and column."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Diagnostic(
        filename, line, column, "",
        f"a character YAML does not allow: U+{ord(character):04X}",
        hint="remove control characters from the file",
    )  # fmt: skip


class _TooLarge(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Converter:
    """Turns a composed node graph into plain data, recording marks and problems."""

    def __init__(self, parsed: Parsed, filename: str) -> None:
        self.parsed = parsed
        self.filename = filename
        self.visited = 0
        self.active: set[int] = set()

    def mark(self, node: yaml.Node) -> Mark:
        return Mark(self.filename, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(
        self, node: yaml.Node, path: JsonPath, message: str, hint: str | None = None
    ) -> None:
        mark = self.mark(node)
        self.parsed.diagnostics.append(
            Diagnostic(self.filename, mark.line, mark.column, format_path(path), message, hint)
        )

    def convert(self, node: yaml.Node, path: JsonPath) -> object:
        self.visited += 1
        if self.visited > MAX_NODES or len(path) > MAX_DEPTH:
            mark = self.mark(node)
            what = "expands to" if self.visited > MAX_NODES else "nests deeper than"
            limit = f"{MAX_NODES} nodes" if self.visited > MAX_NODES else f"{MAX_DEPTH} levels"
            raise _TooLarge(
                Diagnostic(
                    self.filename, mark.line, mark.column, format_path(path),
                    f"the document {what} {limit}; refusing to read further",
                    hint="aliases (*name) that repeat large anchors multiply the document's size",
                )
            )  # fmt: skip
        self.parsed.marks.setdefault(path, self.mark(node))
        if id(node) in self.active:
            self.problem(node, path, "an alias refers to a node that contains it (a cycle)")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        self.problem(node, path, "unsupported YAML node")
        return None

    def sequence(self, node: yaml.SequenceNode, path: JsonPath) -> list[object]:
        if node.tag != _SEQ:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
        return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]

    def mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, object]:
        if node.tag != _MAP:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first = self.parsed.key_marks[child]
                self.problem(
                    key_node, child, f"duplicate key '{key}' (first defined on line {first.line})",
                    hint="YAML would silently keep only the last one; remove or rename one",
                )  # fmt: skip
                continue
            self.parsed.key_marks[child] = self.mark(key_node)
            result[key] = self.convert(value_node, child)
        return result

    def key(self, node: yaml.Node, path: JsonPath) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _MERGE:
            self.parsed.merged.add(path)  # its keys are unknown: "missing key" would mislead
            self.problem(
                node, path, "merge keys ('<<') are not supported",
                hint="use `defaults:` for settings shared by several assets",
            )  # fmt: skip
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            return str(node.value)
        shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        self.problem(
            node, path, f"keys must be strings, got {shown!r}", hint='quote the key: "..."'
        )
        return None

    def scalar(self, node: yaml.ScalarNode, path: JsonPath) -> object:
        value: str = node.value
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):  # dates stay the text the user wrote
            return value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return value.lower() in ("yes", "true", "on", "y")
        try:
            if tag == _INT:
                return _yaml_int(value)
            if tag == _FLOAT:
                return _yaml_float(value)
        except ValueError:
            self.problem(node, path, f"malformed number {value!r}", hint="quote it if it is text")
            return value
        self.problem(node, path, f"unsupported YAML tag {tag!r}", hint="remove the tag")
        return value


def _yaml_int(text: str) -> int:
    """A YAML 1.1 integer (the resolver already matched its shape)."""
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits != "0" and digits.startswith("0"):
        return sign * int(digits, 8)
    if ":" in digits:  # base 60, e.g. 1:30
        total = 0
        for part in digits.split(":"):
            total = total * 60 + int(part)
        return sign * total
    return sign * int(digits)


def _yaml_float(text: str) -> float:
    """A YAML 1.1 float (the resolver already matched its shape)."""
    digits = text.replace("_", "").lower()
    sign = -1.0 if digits.startswith("-") else 1.0
    digits = digits.lstrip("+-")
    if digits == ".inf":
        return sign * math.inf
    if digits == ".nan":
        return math.nan
    if ":" in digits:
        total = 0.0
        for part in digits.split(":"):
            total = total * 60 + float(part)
        return sign * total
    return sign * float(digits)
