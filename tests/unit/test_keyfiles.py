"""ci_cache.keyfiles: the package names a job needs, read from its lock and requirements files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_cache import keyfiles

UV_LOCK = """\
version = 1
revision = 3
requires-python = ">=3.10"

[[package]]
name = "anyio"
version = "4.4.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "idna" },
    { name = "sniffio" },
]
sdist = { url = "https://files.example/anyio-4.4.0.tar.gz", hash = "sha256:00", size = 1 }
wheels = [
    { url = "https://files.example/anyio-4.4.0-py3-none-any.whl", hash = "sha256:00", size = 1 },
]

[[package]]
name = "Typing_Extensions"
version = "4.12.2"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "zope.interface"
version = "7.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "myproject"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "anyio" },
]

[package.metadata]
requires-dist = [
    { name = "not-locked-extra", marker = "extra == 'x'" },
]

[package.optional-dependencies]
dev = [
    { name = "pytest" },
]
"""

PYLOCK = """\
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.10"

[[packages]]
name = "certifi"
version = "2024.8.30"
index = "https://pypi.org/simple"

[[packages.wheels]]
name = "certifi-2024.8.30-py3-none-any.whl"
url = "https://files.example/certifi-2024.8.30-py3-none-any.whl"

[[packages]]
name = "Charset_Normalizer"
version = "3.3.2"

[[packages.wheels]]
name = "charset_normalizer-3.3.2-py3-none-any.whl"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("given", "normal"), [("Zope.Interface", "zope-interface"), ("typing_extensions",
                         "typing-extensions"), ("a__b--c..d", "a-b-c-d"), ("PyYAML", "pyyaml")])
def test_normalize_is_pep_503(given: str, normal: str) -> None:
    assert keyfiles.normalize(given) == normal


def test_uv_lock_names_every_package_once_normalised(tmp_path: Path) -> None:
    names = keyfiles.names_in(write(tmp_path / "uv.lock", UV_LOCK))
    assert names == {"anyio", "typing-extensions", "zope-interface", "myproject"}


def test_pylock_names_packages_not_wheel_files(tmp_path: Path) -> None:
    for filename in ("pylock.toml", "pylock.dev.toml"):
        names = keyfiles.names_in(write(tmp_path / filename, PYLOCK))
        assert names == {"certifi", "charset-normalizer"}


def test_requirements_with_comments_markers_extras_options_and_nesting(tmp_path: Path) -> None:
    write(tmp_path / "reqs" / "base.txt", "# the base\nrequests[socks,security] >= 2.31 ; python_version >= '3.8'\n"
          "Django==4.2.*  # pinned\n")
    write(tmp_path / "reqs" / "constraints.txt", "urllib3<3\n")
    write(tmp_path / "reqs" / "more" / "extra.txt", "-r ../base.txt\nattrs\n")
    top = write(
        tmp_path / "requirements.txt",
        "--index-url https://pypi.example/simple\n"
        "-r reqs/base.txt\n"
        "--requirement reqs/more/extra.txt\n"
        "-c reqs/constraints.txt\n"
        "\n"
        "   # an indented comment\n"
        "numpy>=1.26 \\\n"
        "    --hash=sha256:0123\n"
        "Zope.Interface~=7.0\n"
        "pkg-with-url @ https://files.example/pkg_with_url-1.0-py3-none-any.whl\n"
        "-e ./local-src\n"
        "./another/local/path\n",
    )
    names = keyfiles.names_in(top)
    assert names == {"requests", "django", "attrs", "urllib3", "numpy", "zope-interface", "pkg-with-url"}


def test_requirements_with_the_equals_form_of_the_option(tmp_path: Path) -> None:
    write(tmp_path / "base.txt", "rich\n")
    top = write(tmp_path / "requirements.txt", "--requirement=base.txt\nclick\n")
    assert keyfiles.names_in(top) == {"rich", "click"}


def test_requirements_cycles_terminate(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "-r b.txt\nalpha\n")
    write(tmp_path / "b.txt", "-r a.txt\nbeta\n")
    assert keyfiles.names_in(tmp_path / "a.txt") == {"alpha", "beta"}


def test_requirements_in_and_a_missing_nested_file(tmp_path: Path) -> None:
    top = write(tmp_path / "requirements.in", "-r does-not-exist.txt\nflask\n")
    assert keyfiles.names_in(top) == {"flask"}


def test_pyproject_dependencies_optional_and_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        "[project]\n"
        'name = "myproject"\n'
        "dependencies = [\n"
        '  "httpx>=0.27",\n'
        "  \"Typing_Extensions; python_version < '3.11'\",\n"
        "]\n"
        "\n"
        "[project.optional-dependencies]\n"
        'cli = ["rich", "click>=8"]\n'
        "\n"
        "[dependency-groups]\n"
        "dev = [\n"
        '  "pytest>=8",\n'
        "]\n",
    )
    names = keyfiles.names_in(path)
    assert names is not None
    assert {"httpx", "typing-extensions", "rich", "click", "pytest"} <= names


def test_pyproject_metadata_lists_are_not_package_names(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        "[project]\n"
        'name = "myproject"\n'
        'keywords = ["cache", "ci"]\n'
        "classifiers = [\n"
        '  "Programming Language :: Python :: 3",\n'
        '  "License :: OSI Approved :: MIT License",\n'
        "]\n"
        'dependencies = ["httpx"]\n',
    )
    assert keyfiles.names_in(path) == {"httpx"}


@pytest.mark.parametrize("name", ["environment.yml", "Pipfile.lock", "setup.cfg", "poetry.lock.json", "deps.json"])
def test_unknown_formats_give_none(tmp_path: Path, name: str) -> None:
    assert keyfiles.names_in(write(tmp_path / name, "anything\n")) is None


def test_an_unreadable_path_gives_none(tmp_path: Path) -> None:
    assert keyfiles.names_in(tmp_path / "uv.lock") is None


def test_read_unions_files_found_by_globs(tmp_path: Path) -> None:
    write(tmp_path / "uv.lock", UV_LOCK)
    write(tmp_path / "ci" / "requirements-test.txt", "pytest\n")
    write(tmp_path / "ci" / "nested" / "requirements-docs.txt", "sphinx\n")
    found = keyfiles.read(["uv.lock", "**/requirements-*.txt", "missing.lock"], tmp_path)
    assert set(found.files) == {tmp_path / "uv.lock", tmp_path / "ci" / "requirements-test.txt",
                                tmp_path / "ci" / "nested" / "requirements-docs.txt"}
    assert found.packages == frozenset(
        {"anyio", "typing-extensions", "zope-interface", "myproject", "pytest", "sphinx"})


def test_read_with_one_unknown_format_seeds_everything(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "pytest\n")
    write(tmp_path / "environment.yml", "dependencies: [numpy]\n")
    found = keyfiles.read(["requirements.txt", "environment.yml"], tmp_path)
    assert len(found.files) == 2
    assert found.packages is None


def test_read_with_no_file_found_seeds_everything(tmp_path: Path) -> None:
    found = keyfiles.read(["uv.lock"], tmp_path)
    assert found.files == ()
    assert found.packages is None


def test_read_accepts_absolute_patterns_and_ignores_dirs(tmp_path: Path) -> None:
    lock = write(tmp_path / "sub" / "uv.lock", UV_LOCK)
    (tmp_path / "requirements.txt").mkdir()
    found = keyfiles.read([str(lock), "requirements.txt"], tmp_path / "elsewhere")
    assert found.files == (lock,)



# ---------------------------------------------------------------------------------------------------
# Pins: the sha256 of the files a job's files name, for the fleet tier.

H = [f"{i:x}" * 64 for i in range(1, 10)]
Pin = keyfiles.Pin

UV_LOCK_HASHES = f"""\
version = 1
revision = 3

[[package]]
name = "demo-alpha"
version = "1.0.0"
source = {{ registry = "https://index.example/simple" }}
dependencies = [
    {{ name = "demo-beta" }},
]
sdist = {{ url = "https://files.example/demo_alpha-1.0.0.tar.gz", hash = "sha256:{H[0]}", size = 10 }}
wheels = [
    {{ url = "https://files.example/demo_alpha-1.0.0-cp311-cp311-win_amd64.whl", hash = "sha256:{H[1]}", size = 1 }},
    {{ url = "https://files.example/demo_alpha-1.0.0-cp311-cp311-manylinux_2_17_x86_64.whl", hash = "sha256:{H[2]}" }},
]

[[package]]
name = "Demo_Eta"
version = "1.0.0"
source = {{ registry = "https://index.example/simple" }}
sdist = {{ url = "https://files.example/demo_eta-1.0.0.tar.gz", hash = "sha256:{H[3].upper()}" }}

[package.metadata]
requires-dist = [{{ name = "demo-alpha" }}]

[[package]]
name = "myproject"
version = "0.1.0"
source = {{ editable = "." }}
"""

# uv export writes a package's wheels on one line.
WHEELS_LINE = ("wheels = [" + ", ".join(f'{{ url = "https://f.example/{n}.whl", hashes = {{ sha256 = "{h}" }} }}'
                                       for n, h in (("a", H[1]), ("b", H[2]))) + "]")
PYLOCK_HASHES = f"""\
lock-version = "1.0"

[[packages]]
name = "demo-alpha"
version = "1.0.0"
sdist = {{ url = "https://files.example/demo_alpha-1.0.0.tar.gz", hashes = {{ sha256 = "{H[0]}" }} }}
{WHEELS_LINE}

[[packages]]
name = "certifi"
version = "2024.8.30"

[[packages.wheels]]
name = "certifi-2024.8.30-py3-none-any.whl"
hashes = {{ sha256 = "{H[4]}" }}

[packages.sdist]
name = "certifi-2024.8.30.tar.gz"
hashes = {{sha256 = "{H[5]}"}}

[[packages]]
name = "archived"
[packages.archive]
url = "https://files.example/archived.zip"
hashes = {{ sha256 = "{H[6]}" }}
"""


def test_uv_lock_pins_each_wheel_and_sdist_of_each_package(tmp_path: Path) -> None:
    needs = keyfiles.needs_in(write(tmp_path / "uv.lock", UV_LOCK_HASHES))
    assert needs is not None
    assert needs.pins == {Pin("demo-alpha", H[0], "sdist"), Pin("demo-alpha", H[1], "wheel"),
                          Pin("demo-alpha", H[2], "wheel"), Pin("demo-eta", H[3], "sdist")}
    assert needs.names == {"demo-alpha", "demo-eta", "myproject"}
    # A lock is installed as it is: nothing is looked up by name or in the index (the editable project
    # is local: never pulled).
    assert needs.unpinned == set() and needs.resolved == set()


def test_pylock_pins_inline_arrays_tables_and_archives(tmp_path: Path) -> None:
    needs = keyfiles.needs_in(write(tmp_path / "pylock.toml", PYLOCK_HASHES))
    assert needs is not None
    assert needs.pins == {Pin("demo-alpha", H[0], "sdist"), Pin("demo-alpha", H[1], "wheel"),
                          Pin("demo-alpha", H[2], "wheel"), Pin("certifi", H[4], "wheel"),
                          Pin("certifi", H[5], "sdist"), Pin("archived", H[6], "any")}


def test_requirements_hashes_continuations_includes_and_urls(tmp_path: Path) -> None:
    write(tmp_path / "reqs" / "base.txt", f"demo-beta==1.2.0 --hash=sha256:{H[4]}\nplain-name>=1\n")
    top = write(
        tmp_path / "requirements.txt",
        "-r reqs/base.txt\n"
        "demo-alpha==1.0.0 \\\n"
        f"    --hash=sha256:{H[0]} \\\n"
        f"    --hash sha256:{H[1]}\n"
        "    # via something\n"
        f"pkg-url @ https://files.example/pkg_url-1.0-py3-none-any.whl#sha256={H[2]}\n",
    )
    needs = keyfiles.needs_in(top)
    assert needs is not None
    assert needs.pins == {Pin("demo-alpha", H[0], "any"), Pin("demo-alpha", H[1], "any"),
                          Pin("demo-beta", H[4], "any"), Pin("pkg-url", H[2], "any")}
    assert needs.unpinned == {"plain-name"}
    assert needs.resolved == {"demo-alpha", "demo-beta", "plain-name", "pkg-url"}
    assert needs.names == needs.resolved


def test_pyproject_gives_names_only(tmp_path: Path) -> None:
    needs = keyfiles.needs_in(write(tmp_path / "pyproject.toml", '[project]\ndependencies = ["httpx>=0.27"]\n'))
    assert needs is not None
    assert (needs.pins, needs.unpinned, needs.resolved) == (set(), {"httpx"}, {"httpx"})


def test_read_unions_pins_and_keeps_them_beside_an_unknown_format(tmp_path: Path) -> None:
    write(tmp_path / "uv.lock", UV_LOCK_HASHES)
    write(tmp_path / "requirements.txt", f"demo-eta==1.0.0 --hash=sha256:{H[3]}\nrich\n")
    write(tmp_path / "environment.yml", "dependencies: [numpy]\n")
    found = keyfiles.read(["uv.lock", "requirements.txt", "environment.yml"], tmp_path)
    assert found.packages is None  # seeding takes everything
    assert Pin("demo-eta", H[3], "sdist") in found.pins and Pin("demo-eta", H[3], "any") in found.pins
    assert found.unpinned == {"rich"} and found.resolved == {"demo-eta", "rich"}


def test_no_key_file_wants_nothing(tmp_path: Path) -> None:
    from ci_cache.tools.base import Wanted

    assert Wanted.from_key_files(keyfiles.read(["uv.lock", "requirements*.txt"], tmp_path)).empty
    write(tmp_path / "uv.lock", UV_LOCK_HASHES)
    assert not Wanted.from_key_files(keyfiles.read(["uv.lock"], tmp_path)).empty
