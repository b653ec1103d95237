"""Settings models with no dependency: frozen classes declared with `setting(...)`, one walker that checks
them (every error with its key path), and their JSON schema.

Every process of every CI job loads the config, so it must cost next to nothing to import: this module
needs only `typing`, and `Model` subclasses are plain classes that type checkers read like dataclasses
(PEP 681). Field types come from the annotations (`Annotated` adds a value's parser or checks), read when a
model is first validated. The method names (`model_validate`, `model_copy`, ...) are the ones the code
used with pydantic, which this replaced (its import alone cost 0.1 s of CPU).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any, ClassVar, Literal, NotRequired, Self, TypedDict, dataclass_transform

Loc = tuple[str | int, ...]
KeyPath = tuple[str, ...]
_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<required>"})()
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


class ErrorDetail(TypedDict):
    """One problem: where (`loc`, keys and list indexes), what (`msg`), its kind (`type`), and the value
    given, unless it must not be echoed (a credential)."""

    loc: Loc
    msg: str
    type: str
    input: NotRequired[Any]
    hint: NotRequired[str]


def error(loc: Loc, msg: str, kind: str, *given: Any, hint: str | None = None) -> ErrorDetail:
    """An ErrorDetail; the value given is the optional last argument (left out, it is never echoed)."""
    detail = ErrorDetail(loc=loc, msg=msg, type=kind)
    if given:
        detail["input"] = given[0]
    if hint is not None:
        detail["hint"] = hint
    return detail


class ValidationError(ValueError):
    """Every problem met while checking a model's data, each with its key path."""

    def __init__(self, title: str, details: list[ErrorDetail]) -> None:
        self.title = title
        self.details = details
        lines = [f"{len(details)} validation error{'s' * (len(details) != 1)} for {title}"]
        for d in details:
            hint = f"; {d['hint']}" if "hint" in d else ""
            lines.append(f"  {'.'.join(map(str, d['loc'])) or '(top level)'}: {d['msg']}{hint} [type={d['type']}]")
        super().__init__("\n".join(lines))

    def errors(self) -> list[ErrorDetail]:
        return [d.copy() for d in self.details]


class Parse:
    """In `Annotated[T, Parse(fn)]`: `fn` turns what was written into a T before T is checked (a ValueError
    is the message); `json` is the JSON schema of what may be written, when it is not T's."""

    def __init__(self, fn: Callable[[Any], Any], json: dict[str, Any] | None = None) -> None:
        self.fn, self.json = fn, json


class Check:
    """In `Annotated[T, Check(fn)]`: once the value is a T, `fn` returns it normalised or raises a ValueError."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn


class Pattern:
    """In `Annotated[str, Pattern(regex)]`: the whole string must match."""

    def __init__(self, regex: str) -> None:
        self.regex = regex


class Setting:
    """A field's declaration: what it means, its default, its bounds, and how a list is written as text."""

    __slots__ = ("default", "default_factory", "doc", "ge", "gt", "le", "name", "separator")

    def __init__(self, doc: str = "", *, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
                 ge: float | None = None, gt: float | None = None, le: float | None = None,
                 separator: str = ",") -> None:
        self.doc, self.default, self.default_factory = doc, default, default_factory
        self.ge, self.gt, self.le, self.separator = ge, gt, le, separator
        self.name = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def make_default(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


def setting(doc: str = "", *, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
            ge: float | None = None, gt: float | None = None, le: float | None = None, separator: str = ",") -> Any:
    """Declare a field: `attempts: int = setting("total attempts", default=3, ge=1)`. `separator` splits a
    list given as text (a variable or a flag)."""
    return Setting(doc, default=default, default_factory=default_factory, ge=ge, gt=gt, le=le, separator=separator)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(setting,))
class Model:
    """A frozen settings model: keyword construction validates (a ValidationError lists every problem),
    unknown keys are errors with a "did you mean", and instances compare and hash by value."""

    model_fields: ClassVar[dict[str, Setting]] = {}
    _hints: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = dict(cls.model_fields)
        for name, annotation in cls.__annotations__.items():
            if name.startswith("_") or str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            declared = cls.__dict__.get(name, _MISSING)
            spec = declared if isinstance(declared, Setting) else Setting(default=declared)
            spec.name = name
            fields[name] = spec
            if name in cls.__dict__:
                delattr(cls, name)  # the instance holds the value
        cls.model_fields = fields
        cls._hints = None

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """Each field's type, read from the annotations once, at the first validation."""
        if cls._hints is None:
            hints = typing.get_type_hints(cls, include_extras=True)
            cls._hints = {name: hints[name] for name in cls.model_fields}
        return cls._hints

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        data = dict(values)
        details = self._before(data)
        types_ = cls.field_types()
        for key, value in data.items():
            if key not in cls.model_fields:
                details.append(error((key,), "unknown key (extra keys are not allowed)", "extra_forbidden", value,
                                     hint=_suggest(key, list(cls.model_fields))))
        checked: dict[str, Any] = {}
        for name, spec in cls.model_fields.items():
            if name not in data:
                if spec.required:
                    details.append(error((name,), "Field required", "missing"))
                else:
                    checked[name] = spec.make_default()
                continue
            value, problems = check(types_[name], data[name], (name,))
            if not problems:
                problems = _bounds(spec, value, (name,))
            details += problems
            checked[name] = value
        if not details:
            for name, value in checked.items():
                object.__setattr__(self, name, value)
            details = self._after()
        if details:
            raise ValidationError(cls.__name__, details)

    # Hooks of a model with rules that span keys.
    @classmethod
    def _before(cls, data: dict[str, Any]) -> list[ErrorDetail]:
        """Look at (and take out) values before any is checked or could be echoed; the errors met."""
        return []

    def _after(self) -> list[ErrorDetail]:
        """Rules between checked values; the errors met."""
        return []

    @classmethod
    def model_validate(cls, data: object) -> Self:
        """A model from a mapping of keys (a file's section, merged layers), checked."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(cls.__name__, [error((), "Input should be a mapping of keys", "model_type", data)])
        return cls(**{str(k): v for k, v in data.items()})

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with some values replaced, checked like a new one."""
        return type(self)(**{**self._values(), **(update or {})})

    def model_dump(self) -> dict[str, Any]:
        """The values as JSON data: paths as text, lists for tuples, sections as mappings."""
        return {name: to_json(value) for name, value in self._values().items()}

    @classmethod
    def model_json_schema(cls, title: str | None = None) -> dict[str, Any]:
        """The JSON schema (draft 2020-12) of this model's data, with every key's description and default."""
        defs: dict[str, Any] = {}
        top = _model_schema(cls, defs)
        if title:
            top["title"] = title
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **top, **({"$defs": defs} if defs else {})}

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), *(_frozen(v) for v in self._values().values())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._values().items())})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: `{name}` cannot change")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: `{name}` cannot change")


def _suggest(key: str, known: list[str]) -> str:
    import difflib  # only on errors

    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return frozenset((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def to_json(value: Any) -> Any:
    if isinstance(value, Model):
        return value.model_dump()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------------
# Checking one value against a type.

def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Model)


def _bounds(spec: Setting, value: Any, loc: Loc) -> list[ErrorDetail]:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return []
    for limit, words, kind in ((spec.ge, "greater than or equal to", "greater_than_equal"),
                               (spec.gt, "greater than", "greater_than"),
                               (spec.le, "less than or equal to", "less_than_equal")):
        if limit is None:
            continue
        holds = value >= limit if kind == "greater_than_equal" else value > limit if kind == "greater_than" else \
            value <= limit
        if not holds:
            shown = int(limit) if float(limit).is_integer() else limit
            return [error(loc, f"Input should be {words} {shown}", kind, value)]
    return []


def check(tp: Any, value: Any, loc: Loc) -> tuple[Any, list[ErrorDetail]]:
    """`value` as a `tp` (converted where text or YAML gives it another way), and the errors met."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *marks = typing.get_args(tp)
        for mark in marks:
            if isinstance(mark, Parse):
                try:
                    value = mark.fn(value)
                except ValueError as exc:
                    return value, [error(loc, str(exc), "value_error", value)]
        value, problems = check(base, value, loc)
        if problems:
            return value, problems
        for mark in marks:
            if isinstance(mark, Pattern) and not re.fullmatch(mark.regex, value):
                return value, [error(loc, f"String should match pattern '{mark.regex}'", "string_pattern_mismatch",
                                     value)]
            if isinstance(mark, Check):
                try:
                    value = mark.fn(value)
                except ValueError as exc:
                    return value, [error(loc, str(exc), "value_error", value)]
        return value, []
    if _is_union(tp):
        return _check_union(typing.get_args(tp), value, loc)
    if origin is Literal:
        choices = typing.get_args(tp)
        if any(value == c and type(value) is type(c) for c in choices):
            return value, []
        return value, [error(loc, f"Input should be {_words(choices)}", "literal_error", value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return value, [error(loc, "Input should be a list", "list_type", value)]
        item_type = typing.get_args(tp)[0]
        items, problems = [], []
        for index, given in enumerate(value):
            item, found = check(item_type, given, (*loc, index))
            items.append(item)
            problems += found
        return tuple(items), problems
    if origin is dict:
        if not isinstance(value, Mapping):
            return value, [error(loc, "Input should be a mapping", "dict_type", value)]
        key_type, value_type = typing.get_args(tp)
        out, problems = {}, []
        for given_key, given in value.items():
            key, found = check(key_type, given_key, (*loc, str(given_key)))
            item, found_too = check(value_type, given, (*loc, str(given_key)))
            out[key] = item
            problems += found + found_too
        return out, problems
    if _is_model(tp):
        if isinstance(value, tp):
            return value, []
        try:
            return tp.model_validate(value), []
        except ValidationError as exc:
            return value, [_under(loc, d) for d in exc.details]
    return _check_scalar(tp, value, loc)


def _under(loc: Loc, detail: ErrorDetail) -> ErrorDetail:
    """A nested model's error, at its place in the outer one."""
    moved = detail.copy()
    moved["loc"] = (*loc, *detail["loc"])
    return moved


def _check_union(members: tuple[Any, ...], value: Any, loc: Loc) -> tuple[Any, list[ErrorDetail]]:
    if value is None and type(None) in members:
        return None, []
    candidates = [m for m in members if m is not type(None)]
    tried = []
    for member in candidates:
        result, problems = check(member, value, loc)
        if not problems:
            return result, []
        tried.append((member, problems))
    # Report the branch written for this kind of value (a name, a mapping, ...), else what it could be.
    fitting = [problems for member, problems in tried if len(candidates) == 1 or _takes(member, value)]
    if len(fitting) == 1:
        return value, fitting[0]
    return value, [error(loc, "Input should be " + " or ".join(_describe(m) for m in members), "union_type", value)]


def _takes(tp: Any, value: Any) -> bool:
    """Whether `tp` is the kind of thing `value` is (so its errors are the ones to show)."""
    if typing.get_origin(tp) is Annotated:
        base, *marks = typing.get_args(tp)
        return any(isinstance(m, Parse) for m in marks) or _takes(base, value)
    origin = typing.get_origin(tp)
    if _is_model(tp) or origin is dict:
        return isinstance(value, Mapping)
    if origin is tuple:
        return isinstance(value, list | tuple)
    if origin is Literal or tp in (str, Path):
        return isinstance(value, str)
    if tp in (int, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return tp is bool and isinstance(value, bool)


def _check_scalar(tp: Any, value: Any, loc: Loc) -> tuple[Any, list[ErrorDetail]]:
    if tp is Any:
        return value, []
    if tp is bool:
        if isinstance(value, bool):
            return value, []
        if isinstance(value, int) and value in (0, 1):
            return bool(value), []
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE, []
        return value, [error(loc, "Input should be a valid boolean", "bool_parsing", value)]
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
        if isinstance(value, float) and value.is_integer():
            return int(value), []
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value), []
        return value, [error(loc, "Input should be a valid integer", "int_parsing", value)]
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), []
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", value):
            return float(value), []
        return value, [error(loc, "Input should be a valid number", "float_parsing", value)]
    if tp is str:
        if isinstance(value, str):
            return value, []
        return value, [error(loc, "Input should be a valid string", "string_type", value)]
    if tp is Path:
        if isinstance(value, str | PurePath):
            return Path(value), []
        return value, [error(loc, "Input should be a valid path", "path_type", value)]
    raise TypeError(f"schema: no check for the type {tp!r} at {'.'.join(map(str, loc))}")


def _words(choices: tuple[Any, ...]) -> str:
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Annotated:
        return _describe(typing.get_args(tp)[0])
    if typing.get_origin(tp) is Literal:
        return _words(typing.get_args(tp))
    names = {type(None): "null", str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             Path: "a path"}
    if tp in names:
        return names[tp]
    if _is_model(tp) or typing.get_origin(tp) is dict:
        return "a mapping of keys"
    return "a list" if typing.get_origin(tp) is tuple else str(tp)


# ---------------------------------------------------------------------------------------------------
# Walking a model's keys.

def leaves(model: type[Model], at: KeyPath = ()) -> Iterator[tuple[KeyPath, Setting, Any]]:
    """Every key that holds a value (not a section), with its declaration and its type, in order."""
    for name, tp in model.field_types().items():
        if _is_model(tp):
            yield from leaves(tp, (*at, name))
        else:
            yield (*at, name), model.model_fields[name], tp


def plain_type(tp: Any) -> Any:
    """The type a value must be, without `Annotated` marks or `| None`."""
    if typing.get_origin(tp) is Annotated:
        return plain_type(typing.get_args(tp)[0])
    if _is_union(tp):
        rest = [m for m in typing.get_args(tp) if m is not type(None)]
        return plain_type(rest[0]) if len(rest) == 1 else tp
    return tp


def choices_of(tp: Any) -> tuple[Any, ...]:
    """The words a key takes when it is one of a few, else ()."""
    plain = plain_type(tp)
    return typing.get_args(plain) if typing.get_origin(plain) is Literal else ()


def is_list(tp: Any) -> bool:
    return typing.get_origin(plain_type(tp)) is tuple


# ---------------------------------------------------------------------------------------------------
# The JSON schema.

def _model_schema(model: type[Model], defs: dict[str, Any]) -> dict[str, Any]:
    properties = {}
    for name, tp in model.field_types().items():
        spec = model.model_fields[name]
        prop = _bounded(_type_schema(tp, defs), spec)
        if spec.doc:
            prop["description"] = spec.doc
        if not spec.required:
            prop["default"] = to_json(spec.make_default())
        properties[name] = prop
    out: dict[str, Any] = {"title": model.__name__}
    if model.__doc__:
        out["description"] = " ".join(model.__doc__.split("\n\n")[0].split())
    out |= {"type": "object", "properties": properties, "additionalProperties": False}
    required = [name for name, spec in model.model_fields.items() if spec.required]
    if required:
        out["required"] = required
    return out


def _bounded(schema: dict[str, Any], spec: Setting) -> dict[str, Any]:
    if "anyOf" in schema:
        return {**schema, "anyOf": [_bounded(branch, spec) for branch in schema["anyOf"]]}
    if schema.get("type") not in ("integer", "number"):
        return schema
    words = {"minimum": spec.ge, "exclusiveMinimum": spec.gt, "maximum": spec.le}
    return {**schema, **{k: v for k, v in words.items() if v is not None}}


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *marks = typing.get_args(tp)
        for mark in marks:
            if isinstance(mark, Parse) and mark.json is not None:
                return dict(mark.json)
        schema = _type_schema(base, defs)
        for mark in marks:
            if isinstance(mark, Pattern):
                schema["pattern"] = mark.regex
        return schema
    if _is_union(tp):
        return {"anyOf": [_type_schema(m, defs) for m in typing.get_args(tp)]}
    if origin is Literal:
        values = list(typing.get_args(tp))
        return {"enum": values, **({"type": "string"} if all(isinstance(v, str) for v in values) else {})}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(typing.get_args(tp)[1], defs)}
    if _is_model(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placed first, so a model that refers to itself ends
            defs[tp.__name__] = _model_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    simple = {type(None): "null", str: "string", Path: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}
