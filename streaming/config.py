"""Loading a consumer's TOML configuration into a msgspec Struct.

Every consumer config is a TOML file whose keys sit either at the top level
or under the consumer's own table (``[portfolio]``, ``[risk]``, ...), so one
file can configure several consumers. Conversion uses ``msgspec.convert``, so
the Structs' own rules apply: unknown keys are errors
(``forbid_unknown_fields=True``, which :class:`TomlConfig` sets), as are
values of the wrong type and whatever ``__post_init__`` rejects. An error
raised while loading a file keeps its type and is prefixed with the file
(and the table, when the keys came from one); msgspec's message names the key
(``... - at `$.constraints```).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import msgspec

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file."""
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise tomllib.TOMLDecodeError(f"{path}: {exc}") from exc


def section_of(data: Mapping[str, Any], section: str | None) -> Mapping[str, Any]:
    """``data[section]`` when that is a table, else ``data`` itself (a flat file)."""
    if section and isinstance(data.get(section), dict):
        return data[section]
    return data


def convert_section(data: Mapping[str, Any], section: str | None, cls: type[T]) -> T:
    """The ``section`` table of ``data`` (or ``data``, when flat) as a ``cls``."""
    return msgspec.convert(section_of(data, section), cls)


def load_toml_section(path: str | Path, section: str | None, cls: type[T]) -> T:
    """Read ``path`` and convert its ``section`` table (or the whole file, when flat) to ``cls``.

    A validation error keeps its type (``msgspec.ValidationError``, a
    ``ValueError``) and is prefixed with the file and the table it came from.
    """
    return _from_file(path, section, lambda data: convert_section(data, section, cls))


def _from_file(path: str | Path, section: str | None, build: Callable[[dict[str, Any]], T]) -> T:
    data = read_toml(path)
    try:
        return build(data)
    except ValueError as exc:
        where = f"{path} [{section}]" if section and isinstance(data.get(section), dict) else str(path)
        try:
            renamed = type(exc)(f"{where}: {exc}")
        except Exception:  # noqa: BLE001 - an exception type with another constructor
            raise exc from None
        raise renamed from exc


class TomlConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of a consumer's config Struct: ``from_mapping`` and ``load`` for its TOML table.

    Subclasses name their table in ``toml_section`` and may extend
    ``from_mapping`` with checks across fields (``load`` goes through it).
    """

    toml_section: ClassVar[str | None] = None

    @classmethod
    def from_mapping(cls: type[T], data: Mapping[str, Any]) -> T:
        return convert_section(data, cls.toml_section, cls)  # type: ignore[attr-defined]

    @classmethod
    def load(cls: type[T], path: str | Path | None) -> T:
        """The config in ``path``; the defaults when ``path`` is None."""
        if path is None:
            return cls()
        return _from_file(path, cls.toml_section, cls.from_mapping)  # type: ignore[attr-defined]


def config_error(path: str | Path | None, exc: BaseException) -> str:
    """``bad config <file>: <what>`` for an error raised while loading ``path`` (named once: the
    loader's errors already start with the file)."""
    what = str(exc)
    if path is None:
        return f"bad config: {what}"
    return f"bad config {what}" if what.startswith(str(path)) else f"bad config {path}: {what}"
