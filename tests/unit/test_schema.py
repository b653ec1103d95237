"""ci_cache.schema: the settings models' checks (every error with its key path), their frozen values, and
their JSON schema; and that ci-cache loads its config without pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest

from ci_cache.schema import Check, ErrorDetail, Model, Parse, Pattern, ValidationError, error, setting
from ci_cache.units import Duration, Size

Colour = Annotated[Literal["red", "green"], Parse(lambda v: "red" if v is False else v)]
Name = Annotated[str, Pattern(r"^[a-z]+$")]


def _no_spaces(value: str) -> str:
    if " " in value:
        raise ValueError("no spaces, please")
    return value.upper()


class Inner(Model):
    """A section of keys."""

    count: int = setting("how many", default=2, ge=1, le=9)
    delay: Duration = setting("how long", default=5.0, gt=0)
    words: tuple[str, ...] = setting("some words", default=())


class Named(Model):
    """An entry given as a mapping."""

    name: Name = setting("its name")
    env: dict[str, str] = setting("its variables")
    size: Size | None = setting("how big", default=None)


class Outer(Model):
    """The top of a file."""

    colour: Colour = setting("a colour", default="green")
    flag: bool = setting("a switch", default=False)
    ratio: float = setting("a fraction", default=0.5, ge=0, le=1)
    path: Path | None = setting("a place", default=None)
    code: Annotated[str, Check(_no_spaces)] | None = setting("a code", default=None)
    inner: Inner = setting("a section", default=Inner())
    entries: tuple[Name | Named, ...] = setting("names or entries", default=("a",))

    def _after(self) -> list[ErrorDetail]:
        if self.flag and self.path is None:
            return [error(("path",), "`flag` needs a `path`", "needs_path")]
        return []


def problems(data: dict[str, Any], model: type[Model] = Outer) -> list[ErrorDetail]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value.errors()


def test_defaults_and_conversions_from_text_and_yaml() -> None:
    assert Outer() == Outer.model_validate({})
    got = Outer.model_validate({"colour": False, "flag": "yes", "ratio": "0.25", "path": "/x", "code": "ab",
                                "inner": {"count": "3", "delay": "2m", "words": ["a", "b"]},
                                "entries": ["abc", {"name": "tool", "env": {"X": "{dir}"}, "size": "1KiB"}]})
    assert got.colour == "red" and got.flag is True and got.ratio == 0.25 and got.path == Path("/x")
    assert got.code == "AB"  # a Check normalises
    assert got.inner == Inner(count=3, delay=120.0, words=("a", "b"))
    assert got.entries == ("abc", Named(name="tool", env={"X": "{dir}"}, size=1024))
    assert Outer.model_validate({"ratio": 1, "inner": {"count": 4.0}}).inner.count == 4


@pytest.mark.parametrize(("data", "loc", "message"), [
    ({"colour": "blue"}, ("colour",), "Input should be 'red' or 'green'"),
    ({"flag": "maybe"}, ("flag",), "Input should be a valid boolean"),
    ({"flag": 2}, ("flag",), "Input should be a valid boolean"),
    ({"ratio": "half"}, ("ratio",), "Input should be a valid number"),
    ({"ratio": True}, ("ratio",), "Input should be a valid number"),
    ({"ratio": 2}, ("ratio",), "Input should be less than or equal to 1"),
    ({"path": 3}, ("path",), "Input should be a valid path"),
    ({"code": "a b"}, ("code",), "no spaces, please"),
    ({"code": 5}, ("code",), "Input should be a valid string"),
    ({"inner": {"count": 0}}, ("inner", "count"), "Input should be greater than or equal to 1"),
    ({"inner": {"count": "many"}}, ("inner", "count"), "Input should be a valid integer"),
    ({"inner": {"count": 1.5}}, ("inner", "count"), "Input should be a valid integer"),
    ({"inner": {"count": True}}, ("inner", "count"), "Input should be a valid integer"),
    ({"inner": {"delay": 0}}, ("inner", "delay"), "Input should be greater than 0"),
    ({"inner": {"delay": "soon"}}, ("inner", "delay"), "'soon' is not a duration"),
    ({"inner": {"words": "a,b"}}, ("inner", "words"), "Input should be a list"),
    ({"inner": {"words": ["a", 3]}}, ("inner", "words", 1), "Input should be a valid string"),
    ({"inner": 3}, ("inner",), "Input should be a mapping of keys"),
    ({"entries": ["Bad"]}, ("entries", 0), "String should match pattern '^[a-z]+$'"),
    ({"entries": [7]}, ("entries", 0), "Input should be a string or a mapping of keys"),
    ({"entries": [{"name": "x", "env": {"K": 1}}]}, ("entries", 0, "env", "K"), "Input should be a valid string"),
    ({"entries": [{"name": "x", "env": []}]}, ("entries", 0, "env"), "Input should be a mapping"),
    ({"entries": [{"name": "x", "env": {}, "size": "lots"}]}, ("entries", 0, "size"), "'lots' is not a size"),
    ({"entries": [{"env": {}}]}, ("entries", 0, "name"), "Field required"),
    ({"flag": True}, ("path",), "`flag` needs a `path`"),
])
def test_each_error_has_its_key_path_and_says_what_is_wanted(
    data: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    found = problems(data)
    assert [(e["loc"], e["msg"].split(";")[0]) for e in found] == [(loc, message)], found


def test_every_problem_is_reported_at_once_and_unknown_keys_have_a_suggestion() -> None:
    found = problems({"colour": "blue", "inner": {"cuont": 3, "delay": "x"}, "zzz": 1})
    by_loc = {e["loc"]: e for e in found}
    assert set(by_loc) == {("colour",), ("inner", "cuont"), ("inner", "delay"), ("zzz",)}
    assert by_loc[("inner", "cuont")]["type"] == "extra_forbidden"
    assert by_loc[("inner", "cuont")]["hint"] == "did you mean `count`?"
    assert by_loc[("zzz",)]["hint"].startswith("known keys: colour, flag, ratio")
    text = str(ValidationError("Outer", found))
    assert text.startswith("4 validation errors for Outer\n") and "inner.cuont: unknown key" in text


def test_not_a_mapping() -> None:
    assert problems(["colour"])[0]["msg"] == "Input should be a mapping of keys"  # type: ignore[arg-type]


def test_models_are_frozen_values() -> None:
    inner = Inner(count=3)
    with pytest.raises(AttributeError, match="frozen"):
        inner.count = 4  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del inner.count
    assert inner == Inner(count=3) and inner != Inner() and inner != "Inner"
    named = Named(name="a", env={"X": "1"})
    assert hash(named) == hash(Named(name="a", env={"X": "1"}))
    assert len({Outer(), Outer(), Outer(flag=False)}) == 1
    assert repr(Inner()) == "Inner(count=2, delay=5.0, words=())"


def test_construction_and_copies_are_checked() -> None:
    with pytest.raises(ValidationError, match="count"):
        Inner(count=0)
    with pytest.raises(ValidationError, match="Field required"):
        Named(name="a")  # type: ignore[call-arg]
    assert Inner().model_copy(update={"count": "4"}).count == 4
    with pytest.raises(ValidationError):
        Inner().model_copy(update={"count": 99})


def test_dump_is_json_data_that_validates_back() -> None:
    outer = Outer.model_validate({"path": "/p", "entries": ["a", {"name": "b", "env": {"K": "v"}}]})
    dumped = outer.model_dump()
    assert dumped["path"] == "/p" and dumped["inner"] == {"count": 2, "delay": 5.0, "words": []}
    assert dumped["entries"] == ["a", {"name": "b", "env": {"K": "v"}, "size": None}]
    assert Outer.model_validate(dumped) == outer


def test_json_schema_is_valid_and_describes_every_key() -> None:
    schema = Outer.model_json_schema(title="outer.yml")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "outer.yml" and schema["description"] == "The top of a file."
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(Outer.model_fields)
    for model in (Outer, Inner, Named):
        properties = schema["properties"] if model is Outer else schema["$defs"][model.__name__]["properties"]
        assert all(prop["description"] for prop in properties.values()), model
    assert schema["$defs"]["Named"]["required"] == ["name", "env"]
    assert schema["properties"]["ratio"] == {"type": "number", "minimum": 0, "maximum": 1, "description":
                                             "a fraction", "default": 0.5}
    validator = jsonschema.Draft202012Validator(schema)
    good = {"colour": "red", "inner": {"delay": "90s", "count": 3}, "entries": ["a", {"name": "b", "env": {}}],
            "code": "x"}
    assert not list(validator.iter_errors(good))
    assert not list(validator.iter_errors(Outer().model_dump()))
    for bad in ({"colour": "blue"}, {"inner": {"delay": "soon"}}, {"inner": {"count": 0}}, {"nope": 1},
                {"entries": ["Bad"]}, {"entries": [{"name": "b"}]}, {"inner": {"delay": 0}}):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(ValidationError):
            Outer.model_validate(bad)


@pytest.mark.spawns
def test_ci_cache_loads_and_shows_its_config_without_pydantic(tmp_path: Path) -> None:
    """Every ci-cache process imports its config: it must stay cheap (pydantic alone cost 0.1 s of CPU)."""
    (tmp_path / "ci-cache.yml").write_text("mode: shared\nremote: {url: 's3://bkt/x', pull_budget: 10s}\n")
    code = ("import sys\nfrom pathlib import Path\nfrom ci_cache import cli, config\n"
            "loaded, _ = config.load(env={}, cwd=Path.cwd())\nconfig.describe(loaded)\n"
            "config.Config.model_json_schema()\n"
            "print(loaded.config.remote.pull_budget, sorted({m.split('.')[0] for m in sys.modules} & "
            "{'pydantic', 'pydantic_core', 'msgspec', 'email', 'importlib_metadata'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split(maxsplit=1) == ["10.0", "[]\n"]
