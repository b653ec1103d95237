"""Render a job's env for a shell or CI (`ci-cache setup --format F`): one EnvFormat per format name.

Contracts per format (what each output is safe for):

- ``bash``: POSIX ``sh`` syntax for ``eval "$(ci-cache setup --format bash)"``. Values are single-quoted,
  so every byte except NUL survives, newlines included. PATH keeps the shell's own PATH after the new dirs
  (``"${PATH:+:$PATH}"`` so that an empty PATH does not gain an empty entry, which would mean the cwd).
  With ``windows=True`` (Git Bash) the PATH dirs are converted to MSYS form (``C:\\x`` -> ``/c/x``).
- ``powershell``: for ``... | Out-String | Invoke-Expression``. Printable ASCII goes into single-quoted
  literals, with every PowerShell single-quote character doubled (``'`` and U+2018..U+201B, which
  PowerShell's tokenizer also treats as single quotes). Everything else (non-ASCII, newlines, control
  characters) is spelled ``[char]0xNNNN`` and concatenated, so the output is pure ASCII: it survives any
  console code page, and ``Out-String`` rejoining lines with CRLF cannot alter a value's newlines.
  Setting a variable to ``''`` removes it (PowerShell semantics).
- ``cmd``: ``set "NAME=value"`` lines for ``for /f "tokens=1,*" %%A in ('ci-cache setup --format cmd') do set %%B``
  inside a .bat file (or ``%L`` at the prompt). A FOR variable is substituted after cmd has expanded
  ``%var%`` and processed ``^ & | < >``, so those characters are taken literally and ``%`` must NOT be
  doubled. What cannot be written safely is rejected, naming the variable: ``"`` (cannot be escaped
  inside ``set "..."``), ``!`` (``!var!`` expansion and caret stripping under delayed expansion),
  line breaks, and non-ASCII (``for /f`` decodes the output in the console code page, which need not
  match Python's). Because nothing is expanded, PATH is written in full: the new dirs followed by the
  PATH of the ci-cache process (inherited from the calling batch file). A line over cmd's 8191-character
  limit is rejected. An empty value unsets the variable (cmd semantics). Writing the output to a .bat
  file and CALLing it is NOT supported (a .bat file would need ``%%``).
- ``dotenv``: ``NAME=value`` with the value verbatim (docker ``--env-file``, GitLab dotenv reports);
  line breaks are rejected, and so is a non-empty ``path_prepend`` (dotenv cannot refer to the consumer's
  PATH).
- ``github``: appends ``NAME<<delimiter`` blocks to ``$GITHUB_ENV`` and dirs to ``$GITHUB_PATH``, then
  prints what ``json`` prints, for the action that reads it (its outputs, its state).
- ``gitlab``: ``bash`` on POSIX, ``powershell`` on Windows (the shells of GitLab's shell executor).
- ``json``: the export's ``document`` (the allocation, as ``setup`` describes it) with its ``env`` and
  ``path_prepend`` (and ``unset`` and ``path_remove`` when there are any), as one ASCII-only JSON object.

An export may also undo one (``ci-cache finish --format F`` gives the shell back what setup changed):
``unset`` names variables to remove, and ``path_remove`` dirs to take out of PATH. Removing is what
``bash`` (``unset``), ``powershell`` (``$null``) and ``cmd`` (``set "NAME="``) can say; ``dotenv`` and
``github`` cannot, so they set the variable empty, which tools read as unset. The dirs of
``path_remove`` leave the PATH that ci-cache itself was started with (the shell's), written in full, in
``bash`` on POSIX, ``powershell`` and ``cmd``; elsewhere PATH is left as it is: the dirs no longer exist,
and a missing dir on PATH is skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from ci_cache.errors import UsageError

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# cmd.exe's maximum command-line length.
CMD_MAX_LINE = 8191
# Characters PowerShell's tokenizer treats as a single quote (CharTraits.IsSingleQuote).
PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_PS_QUOTE_RE = re.compile(f"([{PS_SINGLE_QUOTES}])")


class EnvExport(NamedTuple):
    """What a job's later commands need: variables to set and dirs to put first on PATH."""

    env: Mapping[str, str]
    path_prepend: Sequence[str]
    windows: bool
    ci_env: Mapping[str, str]
    # The rest of what `json` (and `github`) print: setup's description of the allocation.
    document: Mapping[str, Any] = MappingProxyType({})
    # Undoing an export (finish): variables to remove, and dirs to take out of PATH.
    unset: Sequence[str] = ()
    path_remove: Sequence[str] = ()


class EnvFormat(Protocol):
    """Renders an EnvExport as text for stdout (and may write files, as `github` does)."""

    def emit(self, export: EnvExport) -> str: ...


def _check(export: EnvExport) -> None:
    """Reject names no shell can set, PATH given as a plain value, and NUL (never valid in an env)."""
    for name in [*export.env, *export.unset]:
        if not _NAME_RE.match(name):
            raise UsageError(f"invalid environment variable name {name!r}", hint="use [A-Za-z_][A-Za-z0-9_]*")
        if name.upper() == "PATH":
            raise UsageError("PATH cannot be set as a plain value", hint="put the dirs into path_prepend")
    for name, value in export.env.items():
        if "\0" in value:
            raise UsageError(f"the value of {name} contains a NUL character")
    for d in export.path_prepend:
        if "\0" in d:
            raise UsageError(f"PATH entry {d!r} contains a NUL character")
        if _path_sep(export.windows) in d:
            raise UsageError(f"PATH entry {d!r} contains the PATH separator {_path_sep(export.windows)!r}")


def _path_sep(windows: bool) -> str:
    return ";" if windows else ":"


def _ci_path(export: EnvExport) -> str | None:
    """The current PATH from the process env (Windows env names are case-insensitive)."""
    if not export.windows:
        return export.ci_env.get("PATH")
    return next((v for k, v in export.ci_env.items() if k.upper() == "PATH"), None)


def _path_without(export: EnvExport) -> str | None:
    """The shell's PATH (the one ci-cache was started with) without the dirs of `path_remove`; None when
    there is nothing to remove from it."""
    current = _ci_path(export)
    if not export.path_remove or current is None:
        return None
    sep = _path_sep(export.windows)
    gone = {_path_key(d, export.windows) for d in export.path_remove}
    kept = [d for d in current.split(sep) if _path_key(d, export.windows) not in gone]
    return sep.join(kept) if len(kept) < len(current.split(sep)) else None


def _path_key(d: str, windows: bool) -> str:
    """How a shell compares PATH entries: Windows ignores case and a trailing separator."""
    return d.rstrip("\\/").lower() if windows else d


# --- bash / sh ---------------------------------------------------------------------------------------


def sh_quote(value: str) -> str:
    """Single-quote for POSIX sh: everything is literal; a ' is written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def _msys_path(d: str) -> str:
    """C:\\x\\y -> /c/x/y, how Git Bash (MSYS2) spells Windows paths in PATH."""
    m = re.match(r"([A-Za-z]):[\\/]*(.*)\Z", d, re.DOTALL)
    if not m:
        return d.replace("\\", "/")
    rest = m.group(2).replace("\\", "/")
    return f"/{m.group(1).lower()}/{rest}" if rest else f"/{m.group(1).lower()}"


class BashFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        lines = [f"export {name}={sh_quote(value)}" for name, value in export.env.items()]
        lines += [f"unset {name}" for name in export.unset]
        # Git Bash hands Windows programs a converted PATH, which would not convert back exactly.
        restored = None if export.windows else _path_without(export)
        if restored is not None:
            lines.append(f"export PATH={sh_quote(restored)}")
        if export.path_prepend:
            dirs = [_msys_path(d) if export.windows else d for d in export.path_prepend]
            if any(":" in d for d in dirs):
                raise UsageError(f"a PATH entry for bash contains ':': {dirs!r}")
            lines.append("export PATH=" + ":".join(sh_quote(d) for d in dirs) + '"${PATH:+:$PATH}"')
        return "".join(line + "\n" for line in lines)


# --- PowerShell --------------------------------------------------------------------------------------


def ps_quote(literal: str) -> str:
    """A PowerShell single-quoted literal: every single-quote character (ASCII and typographic) doubled."""
    return "'" + _PS_QUOTE_RE.sub(r"\1\1", literal) + "'"


def ps_string(value: str) -> str:
    """An ASCII-only PowerShell expression that evaluates to `value` (see the module doc)."""
    parts: list[str] = []
    literal: list[str] = []
    for ch in value:
        if " " <= ch <= "~":
            literal.append(ch)
            continue
        if literal or not parts:
            # A leading string literal makes `+` concatenate strings rather than add [char] codes.
            parts.append(ps_quote("".join(literal)))
            literal = []
        units = ch.encode("utf-16-le")
        parts.extend(
            f"[char]0x{int.from_bytes(units[i : i + 2], 'little'):04X}" for i in range(0, len(units), 2)
        )
    if literal or not parts:
        parts.append(ps_quote("".join(literal)))
    return " + ".join(parts)


class PowerShellFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        lines = [f"$env:{name} = {ps_string(value)}" for name, value in export.env.items()]
        lines += [f"$env:{name} = $null" for name in export.unset]
        restored = _path_without(export)
        if restored is not None:
            lines.append(f"$env:PATH = {ps_string(restored)}")
        if export.path_prepend:
            sep = _path_sep(export.windows)
            lines.append(f"$env:PATH = {ps_string(sep.join(export.path_prepend) + sep)} + $env:PATH")
        return "".join(line + "\n" for line in lines)


# --- cmd.exe -----------------------------------------------------------------------------------------

_CMD_UNSAFE = {'"': "a double quote", "!": "'!'", "\n": "a line break", "\r": "a line break"}


def _cmd_set(name: str, value: str) -> str:
    for ch, what in _CMD_UNSAFE.items():
        if ch in value:
            raise UsageError(
                f"the value of {name} contains {what}, which cmd cannot set safely",
                hint="use --format powershell or json",
            )
    if not value.isascii():
        raise UsageError(
            f"the value of {name} contains non-ASCII characters, which 'for /f' may decode wrongly",
            hint="use --format powershell, or set CI_CACHE_ROOT to an ASCII-only path",
        )
    line = f'set "{name}={value}"'
    if len(line) > CMD_MAX_LINE:
        raise UsageError(f"setting {name} needs a {len(line)}-character line; cmd allows {CMD_MAX_LINE}")
    return line


class CmdFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        lines = [_cmd_set(name, value) for name, value in export.env.items()]
        lines += [_cmd_set(name, "") for name in export.unset]
        restored = _path_without(export)
        if restored is not None:
            lines.append(_cmd_set("PATH", restored))
        if export.path_prepend:
            current = _ci_path(export)
            if current is None:
                raise UsageError("the cmd format needs PATH in the environment to prepend to")
            sep = _path_sep(export.windows)
            lines.append(_cmd_set("PATH", sep.join(export.path_prepend) + (sep + current if current else "")))
        return "".join(line + "\n" for line in lines)


# --- dotenv ------------------------------------------------------------------------------------------


class DotenvFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        if export.path_prepend:
            raise UsageError(
                "the dotenv format cannot prepend to PATH", hint="use --format bash, powershell or json"
            )
        for name, value in export.env.items():
            if "\n" in value or "\r" in value:
                raise UsageError(f"the value of {name} contains a line break, which dotenv cannot hold")
        # dotenv cannot remove a variable: an empty one is what tools read as unset.
        values = {**export.env, **dict.fromkeys(export.unset, "")}
        return "".join(f"{name}={value}\n" for name, value in values.items())


# --- GitHub Actions ----------------------------------------------------------------------------------


def _ci_file(export: EnvExport, var: str) -> Path:
    target = export.ci_env.get(var)
    if not target:
        raise UsageError(
            f"--format github needs ${var}",
            hint="run inside a GitHub Actions step, or pick another --format",
        )
    return Path(target)


def github_delimiter(values: Sequence[str], token: Callable[[], str] = lambda: os.urandom(16).hex()) -> str:
    """A heredoc delimiter that is not a substring of any value (the runner rejects one that is)."""
    while True:
        delimiter = f"ghadelimiter_{token()}"
        if not any(delimiter in v for v in values):
            return delimiter


class GithubFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        env_file = _ci_file(export, "GITHUB_ENV")
        path_file = _ci_file(export, "GITHUB_PATH") if export.path_prepend else None
        for d in export.path_prepend:
            if "\n" in d or "\r" in d:
                raise UsageError(f"PATH entry {d!r} contains a line break")
        # The runner cannot remove a variable: an empty one is what tools read as unset.
        values = {**export.env, **dict.fromkeys(export.unset, "")}
        delimiter = github_delimiter(list(values.values()))
        text = "".join(f"{name}<<{delimiter}\n{value}\n{delimiter}\n" for name, value in values.items())
        # newline="" keeps "\n": the runner splits on "\n" and a value's own "\r" must not be rewritten.
        with env_file.open("a", encoding="utf-8", newline="") as f:
            f.write(text)
        if path_file is not None:
            # The runner prepends each line in turn, so the first dir must be written last.
            with path_file.open("a", encoding="utf-8", newline="") as f:
                f.write("".join(d + "\n" for d in reversed(export.path_prepend)))
        return FORMATS["json"].emit(export)


# --- JSON and aliases --------------------------------------------------------------------------------


class JsonFormat:
    def emit(self, export: EnvExport) -> str:
        _check(export)
        document = {**export.document, "env": dict(export.env), "path_prepend": list(export.path_prepend)}
        if export.unset:
            document["unset"] = list(export.unset)
        if export.path_remove:
            document["path_remove"] = list(export.path_remove)
        return json.dumps(document, indent=2) + "\n"


class GitlabFormat:
    """GitLab's shell executor runs bash (or sh) on POSIX and PowerShell on Windows."""

    def emit(self, export: EnvExport) -> str:
        return FORMATS["powershell" if export.windows else "bash"].emit(export)


FORMATS: dict[str, EnvFormat] = {
    "json": JsonFormat(),
    "bash": BashFormat(),
    "powershell": PowerShellFormat(),
    "cmd": CmdFormat(),
    "dotenv": DotenvFormat(),
    "github": GithubFormat(),
    "gitlab": GitlabFormat(),
}


def emit(name: str, export: EnvExport) -> str:
    """Render `export` in format `name`; an unknown name is a UsageError that lists the valid ones."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise UsageError(f"unknown --format {name!r}", hint="choose one of " + ", ".join(sorted(FORMATS)))
    return fmt.emit(export)
