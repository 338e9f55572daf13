"""Case-insensitive, multi-valued HTTP headers, kept in arrival order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class Headers:
    """Header names are stored lower-case; values as received (latin-1 decoded)."""

    __slots__ = ("_first", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k.lower(), v) for k, v in items]
        self._first: dict[str, str] | None = None

    @classmethod
    def from_lower(cls, items: list[tuple[str, str]]) -> Headers:
        """Adopt a list whose names are already lower-case (the parser's fast path)."""
        h = cls.__new__(cls)
        h._items = items
        h._first = None
        return h

    def _index(self) -> dict[str, str]:
        if self._first is None:
            first: dict[str, str] = {}
            for k, v in self._items:
                first.setdefault(k, v)
            self._first = first
        return self._first

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._index().get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k == name]

    def get_list(self, name: str) -> list[str]:
        """Comma-separated list values merged across repeated fields (RFC 9110 5.3)."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(p.strip() for p in value.split(",") if p.strip())
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index()

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def set(self, name: str, value: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._items if k != name]
        self._items.append((name, value))
        self._first = None

    def add(self, name: str, value: str) -> None:
        self._items.append((name.lower(), value))
        self._first = None

    def remove(self, name: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._items if k != name]
        self._first = None

    def copy(self) -> Headers:
        return Headers.from_lower(list(self._items))

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
