"""A Modelfile reader that follows Ollama's parser (parser/parser.go) and parameter checks (api.FormatParams).

Written from Ollama's rules, independently of gemma3n_gguf.package: a rune-level state machine
(comment, instruction name, parameter name, message role, value), values ending at the first
newline where the trimmed text unquotes (``\"\"\"...\"\"\"``, ``"..."`` or bare), only printable runes
kept outside that rule, and PARAMETER values typed as Go's strconv parses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMANDS = {"from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
            "message", "requires"}
ROLES = {"system", "user", "assistant"}
INT, FLOAT, BOOL, STRING = "int", "float", "bool", "string"
OPTION_TYPES = {  # api.Options JSON tags in Ollama 0.9.3
    "num_ctx": INT, "num_batch": INT, "num_gpu": INT, "main_gpu": INT, "use_mmap": BOOL, "num_thread": INT,
    "num_keep": INT, "seed": INT, "num_predict": INT, "top_k": INT, "top_p": FLOAT, "min_p": FLOAT,
    "typical_p": FLOAT, "repeat_last_n": INT, "temperature": FLOAT, "repeat_penalty": FLOAT,
    "presence_penalty": FLOAT, "frequency_penalty": FLOAT, "stop": STRING,
}


class ModelfileSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    name: str  # "model" for FROM, the parameter name for PARAMETER
    args: str


def unquote(s: str) -> tuple[str, bool]:
    if s[:3] == '"""':
        return (s[3:-3], True) if len(s) >= 6 and s.endswith('"""') else ("", False)
    if s[:1] == '"':
        return (s[1:-1], True) if len(s) >= 2 and s.endswith('"') else ("", False)
    return s, True


def _is_printable(ch: str) -> bool:  # Go's strconv.IsPrint: no separators but ASCII space, no controls
    return ch == " " or ch.isprintable()


def parse(text: str) -> list[Command]:
    commands: list[Command] = []
    state, buf, name, role = "nil", "", "", ""
    for ch in text:
        if state == "nil":
            if ch == "#":
                state = "comment"
            elif ch not in " \t\r\n":
                state, buf = "name", ch
            continue
        if state == "comment":
            state = "nil" if ch in "\r\n" else "comment"
            continue
        if state == "name":
            if ch.isascii() and ch.isalpha():
                buf += ch
                continue
            if ch not in " \t" or buf.lower() not in COMMANDS:
                raise ModelfileSyntaxError(f"invalid command {buf!r}")
            lowered = buf.lower()
            state = {"parameter": "parameter", "message": "message"}.get(lowered, "value")
            name, buf = ("model" if lowered == "from" else lowered), ""
            continue
        if state in ("parameter", "message"):
            if ch not in " \t":
                if state == "parameter" and not (ch.isascii() and (ch.isalnum() or ch == "_")):
                    raise ModelfileSyntaxError(f"bad parameter name character {ch!r}")
                if state == "message" and not (ch.isascii() and ch.isalpha()):
                    raise ModelfileSyntaxError(f"bad message role character {ch!r}")
                buf += ch
                continue
            if state == "parameter":
                name = buf
            else:
                if buf not in ROLES:
                    raise ModelfileSyntaxError(f"message role {buf!r}")
                role = buf
            state, buf = "value", ""
            continue
        # state == "value"
        if ch in " \t\r\n":
            value, ok = unquote(buf.strip())
            if not ok or ch in " \t":
                buf += ch
                continue
            commands.append(Command(name, f"{role}: {value}" if role else value))
            state, buf, role = "nil", "", ""
            continue
        if _is_printable(ch):
            buf += ch
    if state == "value":
        value, ok = unquote(buf.strip())
        if not ok:
            raise ModelfileSyntaxError("unexpected end of file inside a quoted value")
        commands.append(Command(name, f"{role}: {value}" if role else value))
    elif state not in ("nil", "comment"):
        raise ModelfileSyntaxError("unexpected end of file")
    if not any(c.name == "model" for c in commands):
        raise ModelfileSyntaxError("no FROM line")
    for command in commands:
        _check_parameter(command)
    return commands


def _check_parameter(command: Command) -> None:
    if command.name in {"model", "template", "system", "license", "adapter", "draft", "renderer", "parser",
                        "requires", "message"}:
        return
    kind = OPTION_TYPES.get(command.name)
    if kind is None:
        raise ModelfileSyntaxError(f"unknown parameter {command.name!r}")
    value = command.args
    valid = {
        INT: lambda v: re.fullmatch(r"[+-]?\d+", v) is not None,
        FLOAT: lambda v: re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(?i:inf|infinity|nan)", v) is not None,
        BOOL: lambda v: v in {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"},
        STRING: lambda v: True,
    }[kind](value)
    if not valid:
        raise ModelfileSyntaxError(f"invalid {kind} value {value!r} for {command.name}")
