"""Tests for ci_cache.envformat: each format's output, read back the way its consumer reads it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from ci_cache import envformat
from ci_cache.envformat import FORMATS, EnvExport, emit
from ci_cache.errors import UsageError

NASTY: dict[str, str] = {
    "PLAIN": "/tmp/ci-cache/jobs/k1/uv",
    "SPACES": "C:\\Program Files (x86)\\some dir\\",
    "SQUOTE": "it's 'quoted' ''",
    "DQUOTE": 'say "hi"',
    "DOLLAR": "$HOME ${PATH} $(echo pwned) `echo pwned`",
    "BACKSLASH": "a\\b\\\\c\\",
    "GLOB": "* ? [a-z] ~ #comment",
    "SEMI": "a; echo pwned & echo x | cat > /dev/null",
    "UNICODE": "Jürgen/日本語/😀/\u2018smart\u2019",
    "NEWLINES": "line1\nline2\r\nline3\n",
    "EMPTY": "",
    "TRAILING_SPACE": "value  ",
}


def export(
    env: Mapping[str, str],
    path_prepend: Sequence[str] = (),
    *,
    windows: bool = False,
    ci_env: Mapping[str, str] | None = None,
) -> EnvExport:
    return EnvExport(env=env, path_prepend=path_prepend, windows=windows, ci_env=ci_env or {})


# --- registry and validation -------------------------------------------------------------------------


def test_registry_has_every_documented_format() -> None:
    assert set(FORMATS) == {"json", "bash", "powershell", "cmd", "dotenv", "github", "gitlab"}


def test_unknown_format_names_the_valid_ones() -> None:
    with pytest.raises(UsageError) as exc:
        emit("fish", export({"A": "1"}))
    assert "fish" in str(exc.value)
    for name in FORMATS:
        assert name in str(exc.value)
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A=B", "Ä", "A\n"])
@pytest.mark.parametrize("fmt", ["json", "bash", "powershell", "cmd", "dotenv"])
def test_invalid_names_are_rejected(fmt: str, name: str) -> None:
    with pytest.raises(UsageError, match="invalid environment variable name"):
        emit(fmt, export({name: "x"}))


@pytest.mark.parametrize("fmt", ["json", "bash", "powershell", "cmd", "dotenv"])
@pytest.mark.parametrize("name", ["PATH", "Path"])
def test_path_as_a_plain_value_is_rejected(fmt: str, name: str) -> None:
    with pytest.raises(UsageError, match="path_prepend"):
        emit(fmt, export({name: "/x"}))


@pytest.mark.parametrize("fmt", ["json", "bash", "powershell", "cmd", "dotenv"])
def test_nul_is_rejected_and_names_the_variable(fmt: str) -> None:
    with pytest.raises(UsageError, match="BAD"):
        emit(fmt, export({"BAD": "a\0b"}))


@pytest.mark.parametrize(("windows", "entry"), [(False, "/a:/b"), (True, "C:\\a;C:\\b")])
def test_path_entry_with_separator_is_rejected(windows: bool, entry: str) -> None:
    with pytest.raises(UsageError, match="separator"):
        emit("powershell", export({}, [entry], windows=windows))


def test_empty_export_renders_nothing() -> None:
    for fmt in ("bash", "powershell", "cmd", "dotenv"):
        assert emit(fmt, export({})) == ""


# --- bash --------------------------------------------------------------------------------------------


def _eval_sh(shell: str, script: str, names: Sequence[str], path: str | None = "/usr/bin:/bin") -> list[str]:
    """Run `script` through eval in a real shell, then print each variable NUL-terminated."""
    prints = "".join(f' "${{{n}-<unset>}}"' for n in names)
    env = {} if path is None else {"PATH": path}
    out = subprocess.run(
        [shell, "-c", f"eval \"$1\"; printf '%s\\0'{prints}", "sh", script],
        env=env,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode("utf-8").split("\0")[:-1]


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_round_trip_of_nasty_values() -> None:
    script = emit("bash", export(NASTY))
    assert _eval_sh("bash", script, list(NASTY)) == list(NASTY.values())


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is not installed (POSIX sh check)")
def test_bash_format_is_plain_posix_sh() -> None:
    script = emit("bash", export(NASTY, ["/opt/a b", "/c'd"]))
    assert _eval_sh("dash", script, [*NASTY, "PATH"]) == [*NASTY.values(), "/opt/a b:/c'd:/usr/bin:/bin"]


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_round_trip_through_a_file_like_the_docs_say(tmp_path: Path) -> None:
    f = tmp_path / "env.sh"
    f.write_text(emit("bash", export(NASTY)), encoding="utf-8")
    for name, value in NASTY.items():
        out = subprocess.run(
            ["bash", "-c", f'eval "$(cat "$1")"; printf %s "${name}"', "bash", str(f)],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=True,
        )
        # $(...) strips trailing newlines of the script, never of a quoted value inside it.
        assert out.stdout.decode("utf-8") == value


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_path_prepend_keeps_the_shell_path_and_order() -> None:
    script = emit("bash", export({"A": "1"}, ["/opt/x y", "/opt/$z"]))
    assert script.splitlines()[-1] == "export PATH='/opt/x y':'/opt/$z'\"${PATH:+:$PATH}\""
    assert _eval_sh("bash", script, ["PATH"]) == ["/opt/x y:/opt/$z:/usr/bin:/bin"]


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_path_prepend_to_an_empty_path_adds_no_cwd_entry() -> None:
    script = emit("bash", export({}, ["/opt/a"]))
    assert _eval_sh("bash", f"PATH=''\n{script}", ["PATH"], path=None) == ["/opt/a"]


def test_bash_quoting_is_single_quotes_only() -> None:
    assert emit("bash", export({"A": "it's"})) == "export A='it'\\''s'\n"
    assert envformat.sh_quote("") == "''"


def test_bash_on_windows_uses_git_bash_paths() -> None:
    script = emit("bash", export({"A": "C:\\x"}, ["C:\\Tools\\bin", "D:\\"], windows=True))
    assert script == "export A='C:\\x'\nexport PATH='/c/Tools/bin':'/d'\"${PATH:+:$PATH}\"\n"


# --- PowerShell ----------------------------------------------------------------------------------------
# pwsh is not available here, so the tests read the output back with a small evaluator of the subset
# of PowerShell the format emits, written from PowerShell's language rules: a single-quoted string
# ends at any of ' U+2018 U+2019 U+201A U+201B unless the next character is one of them too (then
# the pair stands for the second one); [char]0xNNNN is one UTF-16 code unit; + concatenates strings.

_PS_QUOTES = "'\u2018\u2019\u201a\u201b"
_PS_LINE = re.compile(r"\$env:([A-Za-z_][A-Za-z0-9_]*) = (.*)\Z", re.DOTALL)


def _ps_eval_expr(expr: str, env: Mapping[str, str]) -> str:
    units: list[str] = []
    i = 0
    expect_term = True
    while i < len(expr):
        if expr.startswith(" + ", i) and not expect_term:
            i += 3
            expect_term = True
            continue
        assert expect_term, f"unexpected text at {i}: {expr[i:]!r}"
        if expr[i] in _PS_QUOTES:
            i += 1
            buf: list[str] = []
            while True:
                assert i < len(expr), "unterminated string"
                if expr[i] in _PS_QUOTES:
                    if i + 1 < len(expr) and expr[i + 1] in _PS_QUOTES:
                        buf.append(expr[i + 1])
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(expr[i])
                i += 1
            units.append("".join(buf))
        elif m := re.compile(r"\[char\]0x([0-9A-F]{4})").match(expr, i):
            assert units, "a [char] must follow a string literal to concatenate"
            units.append(chr(int(m.group(1), 16)))
            i = m.end()
        elif expr.startswith("$env:PATH", i):
            units.append(env.get("PATH", ""))
            i += len("$env:PATH")
        else:
            raise AssertionError(f"unexpected text at {i}: {expr[i:]!r}")
        expect_term = False
    # Join UTF-16 surrogate pairs the way .NET strings hold them.
    return "".join(units).encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _ps_run(script: str, path: str = "") -> dict[str, str]:
    # Out-String | Invoke-Expression: lines become statements; the format must not rely on \r vs \n.
    assert script.isascii()
    env = {"PATH": path}
    for line in script.replace("\r\n", "\n").splitlines():
        m = _PS_LINE.match(line)
        assert m, f"not an assignment: {line!r}"
        env[m.group(1)] = _ps_eval_expr(m.group(2), env)
    return env


def test_powershell_round_trip_of_nasty_values() -> None:
    script = emit("powershell", export(NASTY, windows=True))
    env = _ps_run(script)
    assert {k: env[k] for k in NASTY} == NASTY


def test_powershell_output_is_ascii_and_one_line_per_variable() -> None:
    script = emit("powershell", export(NASTY, windows=True))
    assert script.isascii()
    assert len(script.splitlines()) == len(NASTY)


@pytest.mark.parametrize("quote", list(_PS_QUOTES))
def test_powershell_doubles_every_single_quote_character(quote: str) -> None:
    assert envformat.ps_quote(f"a{quote}b") == f"'a{quote}{quote}b'"
    assert _ps_eval_expr(envformat.ps_quote(f"a{quote}b{quote}"), {}) == f"a{quote}b{quote}"


def test_powershell_smart_quotes_cannot_end_the_string() -> None:
    value = "x\u2019; Remove-Item -Recurse C:\\ ; \u2018"
    line = emit("powershell", export({"A": value}, windows=True))
    assert "\u2019" not in line
    assert "\u2018" not in line
    assert _ps_run(line)["A"] == value


def test_powershell_literal_forms() -> None:
    assert emit("powershell", export({"A": "C:\\x y"}, windows=True)) == "$env:A = 'C:\\x y'\n"
    assert emit("powershell", export({"A": 'it\'s $x `n "q"'})) == "$env:A = 'it''s $x `n \"q\"'\n"
    assert emit("powershell", export({"A": ""})) == "$env:A = ''\n"
    assert emit("powershell", export({"A": "é"})) == "$env:A = '' + [char]0x00E9\n"
    assert emit("powershell", export({"A": "a\nb"})) == "$env:A = 'a' + [char]0x000A + 'b'\n"


def test_powershell_astral_characters_become_surrogate_pairs() -> None:
    line = emit("powershell", export({"A": "😀"}))
    assert line == "$env:A = '' + [char]0xD83D + [char]0xDE00\n"
    assert _ps_run(line)["A"] == "😀"


@pytest.mark.parametrize(
    ("windows", "path", "expected"),
    [(True, "C:\\W", "C:\\a b;D:\\c;C:\\W"), (False, "/usr/bin", "/a b:/c:/usr/bin")],
)
def test_powershell_path_prepend(windows: bool, path: str, expected: str) -> None:
    dirs = ["C:\\a b", "D:\\c"] if windows else ["/a b", "/c"]
    script = emit("powershell", export({}, dirs, windows=windows))
    assert script.endswith("+ $env:PATH\n")
    assert _ps_run(script, path=path)["PATH"] == expected


def test_powershell_path_prepend_with_unicode_dir() -> None:
    script = emit("powershell", export({}, ["C:\\Users\\Jürgen\\bin"], windows=True))
    assert _ps_run(script, path="C:\\W")["PATH"] == "C:\\Users\\Jürgen\\bin;C:\\W"


# --- cmd ---------------------------------------------------------------------------------------------


def _cmd_for_f(output: str, env: dict[str, str]) -> dict[str, str]:
    """What `for /f "delims=" %%L in ('...') do %%L` does with `set "N=V"` lines: FOR variables are
    substituted after % expansion and special-character parsing, so the text between the quotes is
    taken literally; `set "N="` removes N."""
    for line in output.splitlines():
        m = re.fullmatch(r'set "([^=]+)=(.*)"', line)
        assert m, f"not a set line: {line!r}"
        if m.group(2):
            env[m.group(1)] = m.group(2)
        else:
            env.pop(m.group(1), None)
    return env


CMD_OK = {
    "PLAIN": "C:\\ci\\jobs\\k1\\uv",
    "SPACES": "C:\\Program Files (x86)\\a dir\\",
    "SPECIAL": "a&b|c<d>e^f (g) ;h, =i",
    "PERCENT": "100% %PATH% %%x",
    "SQUOTE": "it's",
    "TRAILING_SPACE": "value  ",
}


def test_cmd_round_trip_of_safe_values() -> None:
    out = emit("cmd", export(CMD_OK, windows=True))
    assert _cmd_for_f(out, {}) == CMD_OK


def test_cmd_does_not_double_percent_signs() -> None:
    # In the documented for /f contract % is never expanded again: doubling it would corrupt the value.
    assert emit("cmd", export({"A": "100%"}, windows=True)) == 'set "A=100%"\n'


def test_cmd_empty_value_unsets() -> None:
    assert emit("cmd", export({"A": ""}, windows=True)) == 'set "A="\n'


@pytest.mark.parametrize("value", ['a"b', "a!b!", "a\nb", "a\rb", "Jürgen", "日本"])
def test_cmd_rejects_what_it_cannot_express_naming_the_variable(value: str) -> None:
    with pytest.raises(UsageError) as exc:
        emit("cmd", export({"OK": "fine", "MY_VAR": value}, windows=True))
    assert "MY_VAR" in str(exc.value)
    assert exc.value.hint


def test_cmd_path_prepend_writes_the_full_path() -> None:
    ci_env = {"Path": "C:\\Windows;C:\\100%"}
    out = emit("cmd", export({"A": "1"}, ["C:\\a b", "D:\\c"], windows=True, ci_env=ci_env))
    assert out.splitlines()[-1] == 'set "PATH=C:\\a b;D:\\c;C:\\Windows;C:\\100%"'
    assert _cmd_for_f(out, {})["PATH"] == "C:\\a b;D:\\c;C:\\Windows;C:\\100%"


def test_cmd_path_prepend_needs_a_path() -> None:
    with pytest.raises(UsageError, match="PATH"):
        emit("cmd", export({}, ["C:\\a"], windows=True, ci_env={}))


def test_cmd_path_with_a_quote_is_rejected() -> None:
    with pytest.raises(UsageError, match="PATH"):
        emit("cmd", export({}, ["C:\\a"], windows=True, ci_env={"PATH": 'C:\\x;"C:\\y z"'}))


def test_cmd_rejects_lines_over_the_cmd_limit() -> None:
    long_value = "x" * envformat.CMD_MAX_LINE
    with pytest.raises(UsageError, match="LONG"):
        emit("cmd", export({"LONG": long_value}, windows=True))
    fits = "x" * (envformat.CMD_MAX_LINE - len('set "LONG="'))
    assert emit("cmd", export({"LONG": fits}, windows=True)) == f'set "LONG={fits}"\n'


# --- dotenv ------------------------------------------------------------------------------------------


def test_dotenv_values_are_verbatim() -> None:
    env = {k: v for k, v in NASTY.items() if "\n" not in v}
    out = emit("dotenv", export(env))
    parsed = dict(line.split("=", 1) for line in out.splitlines())
    assert parsed == env


@pytest.mark.parametrize("value", ["a\nb", "a\rb"])
def test_dotenv_rejects_line_breaks(value: str) -> None:
    with pytest.raises(UsageError, match="MULTI"):
        emit("dotenv", export({"MULTI": value}))


def test_dotenv_rejects_path_prepend() -> None:
    with pytest.raises(UsageError, match="PATH"):
        emit("dotenv", export({"A": "1"}, ["/x"]))


# --- GitHub Actions ----------------------------------------------------------------------------------


def _parse_github_env(text: str) -> dict[str, str]:
    """The runner's reading of $GITHUB_ENV: `NAME=value` lines and `NAME<<DELIM` heredocs."""
    lines = text.split("\n")
    assert lines[-1] == ""
    lines.pop()
    env: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            env[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            name, value = line.split("=", 1)
            env[name] = value
            i += 1
    return env


def test_github_appends_heredocs_that_parse_back(tmp_path: Path) -> None:
    env_file = tmp_path / "github_env"
    env_file.write_text("EARLIER=1\n", encoding="utf-8")
    ci_env = {"GITHUB_ENV": str(env_file), "GITHUB_PATH": str(tmp_path / "github_path")}
    values = {k: v for k, v in NASTY.items() if "\r" not in v}
    printed = emit("github", export(values, ci_env=ci_env))
    assert _parse_github_env(env_file.read_text(encoding="utf-8")) == {"EARLIER": "1", **values}
    assert not (tmp_path / "github_path").exists()
    # What the action reads on stdout is what --format json prints.
    assert printed == emit("json", export(values, ci_env=ci_env))


def test_github_path_lines_make_the_first_dir_first(tmp_path: Path) -> None:
    path_file = tmp_path / "github_path"
    ci_env = {"GITHUB_ENV": str(tmp_path / "github_env"), "GITHUB_PATH": str(path_file)}
    emit("github", export({"A": "1"}, ["/first", "/second"], ci_env=ci_env))
    emit("github", export({}, ["/third"], ci_env=ci_env))
    # The runner prepends each line in turn (newest first), so rebuild PATH the same way.
    prepend: list[str] = []
    for line in path_file.read_text(encoding="utf-8").splitlines():
        prepend.insert(0, line)
    assert prepend == ["/third", "/first", "/second"]


def test_github_delimiter_avoids_the_values() -> None:
    tokens = iter(["aaa", "bbb"])
    delimiter = envformat.github_delimiter(["x ghadelimiter_aaa y"], token=lambda: next(tokens))
    assert delimiter == "ghadelimiter_bbb"


def test_github_value_containing_a_would_be_delimiter_still_parses(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    value = "ghadelimiter_\nghadelimiter_0\nEOF"
    emit("github", export({"A": value}, ci_env={"GITHUB_ENV": str(env_file)}))
    assert _parse_github_env(env_file.read_text(encoding="utf-8")) == {"A": value}


def test_github_without_github_env_says_what_to_do() -> None:
    with pytest.raises(UsageError) as exc:
        emit("github", export({"A": "1"}))
    assert "GITHUB_ENV" in str(exc.value)
    assert "GitHub Actions step" in str(exc.value)
    assert "--format" in str(exc.value)


def test_github_path_without_github_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="GITHUB_PATH"):
        emit("github", export({}, ["/x"], ci_env={"GITHUB_ENV": str(tmp_path / "e")}))


# --- json and gitlab ----------------------------------------------------------------------------------


def test_json_is_env_and_path_prepend() -> None:
    out = emit("json", export(NASTY, ["/a"]))
    assert out.isascii()
    assert json.loads(out) == {"env": NASTY, "path_prepend": ["/a"]}


def test_json_and_github_print_the_whole_document_with_the_checked_env(tmp_path: Path) -> None:
    document = {"job": "j\u00fcrgen", "mode": "isolated", "env": {"STALE": "x"}, "warnings": ["w"]}
    e = EnvExport(env={"A": "1"}, path_prepend=["/bin-a"], windows=False, document=document,
                  ci_env={"GITHUB_ENV": str(tmp_path / "env"), "GITHUB_PATH": str(tmp_path / "path")})
    out = emit("json", e)
    assert out.isascii()
    # The export's env and path_prepend, the ones every other format renders, win over the document's.
    assert json.loads(out) == {"job": "j\u00fcrgen", "mode": "isolated", "env": {"A": "1"}, "warnings": ["w"],
                               "path_prepend": ["/bin-a"]}
    assert emit("github", e) == out
    assert _parse_github_env((tmp_path / "env").read_text(encoding="utf-8")) == {"A": "1"}
    assert (tmp_path / "path").read_text(encoding="utf-8") == "/bin-a\n"


@pytest.mark.parametrize(("windows", "same_as"), [(False, "bash"), (True, "powershell")])
def test_gitlab_is_the_shell_executor_shell(windows: bool, same_as: str) -> None:
    e = export({"A": "x y", "B": "é"}, ["/opt" if not windows else "C:\\opt"], windows=windows)
    assert emit("gitlab", e) == emit(same_as, e)


# --- undoing an export (finish --format F) ------------------------------------------------------------


def undo(env: Mapping[str, str], unset: Sequence[str], path_remove: Sequence[str] = (), *, windows: bool = False,
         ci_env: Mapping[str, str] | None = None) -> EnvExport:
    return EnvExport(env=env, path_prepend=[], windows=windows, ci_env=ci_env or {}, unset=unset,
                     path_remove=path_remove)


@pytest.mark.spawns
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_undo_sets_back_unsets_and_takes_the_dirs_off_path() -> None:
    script = emit("bash", undo({"TEMP": "/old tmp"}, ["TMPDIR"], ["/job/bin"],
                               ci_env={"PATH": "/job/bin:/usr/bin:/bin"}))
    assert script.splitlines() == ["export TEMP='/old tmp'", "unset TMPDIR", "export PATH='/usr/bin:/bin'"]
    got = _eval_sh("bash", "export TMPDIR=/job/tmp; " + script, ["TEMP", "TMPDIR", "PATH"],
                   path="/job/bin:/usr/bin:/bin")
    assert got == ["/old tmp", "<unset>", "/usr/bin:/bin"]


def test_undo_in_each_format() -> None:
    e = undo({"TEMP": "C:\\old"}, ["UV_CACHE_DIR"], ["C:\\Job\\bin\\"], windows=True,
             ci_env={"Path": "c:\\job\\BIN;C:\\Windows"})
    assert emit("powershell", e).splitlines() == ["$env:TEMP = 'C:\\old'", "$env:UV_CACHE_DIR = $null",
                                                  "$env:PATH = 'C:\\Windows'"]
    assert emit("cmd", e).splitlines() == ['set "TEMP=C:\\old"', 'set "UV_CACHE_DIR="', 'set "PATH=C:\\Windows"']
    # dotenv cannot remove a variable, nor say PATH: an empty one is what tools read as unset
    assert emit("dotenv", e).splitlines() == ["TEMP=C:\\old", "UV_CACHE_DIR="]
    # Git Bash hands Windows programs a converted PATH: it is left alone (the dirs no longer exist)
    assert emit("bash", e).splitlines() == ["export TEMP='C:\\old'", "unset UV_CACHE_DIR"]
    assert json.loads(emit("json", e)) == {"env": {"TEMP": "C:\\old"}, "path_prepend": [], "unset": ["UV_CACHE_DIR"],
                                           "path_remove": ["C:\\Job\\bin\\"]}


def test_undo_leaves_path_alone_when_the_dirs_are_not_on_it() -> None:
    e = undo({}, [], ["/job/bin"], ci_env={"PATH": "/usr/bin"})
    assert emit("bash", e) == "" and emit("cmd", e) == ""


def test_github_undo_empties_what_it_cannot_remove(tmp_path: Path) -> None:
    e = undo({"TEMP": "/old"}, ["TMPDIR"], ci_env={"GITHUB_ENV": str(tmp_path / "env")})
    emit("github", e)
    assert _parse_github_env((tmp_path / "env").read_text(encoding="utf-8")) == {"TEMP": "/old", "TMPDIR": ""}


@pytest.mark.parametrize("fmt", ["bash", "powershell", "cmd", "dotenv", "json"])
def test_undo_rejects_bad_names_and_path(fmt: str) -> None:
    with pytest.raises(UsageError, match="invalid environment variable name"):
        emit(fmt, undo({}, ["A-B"]))
    with pytest.raises(UsageError, match="PATH cannot be set"):
        emit(fmt, undo({}, ["PATH"]))
