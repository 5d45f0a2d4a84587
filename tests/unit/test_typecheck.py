"""The strict reading of declared types (harness/typecheck.py), value by value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest

from harness.errors import InputError
from harness.typecheck import check_arguments, check_fields, conforms, describe


@pytest.mark.parametrize("value,hint,ok", [
    (3, int, True), (3.0, int, False), (10.5, int, False), (True, int, False), ("3", int, False),
    (3, float, True), (0.1, float, True), (math.inf, float, False), (math.nan, float, False), (False, float, False),
    (True, bool, True), ("no", bool, False), ("true", bool, False), (1, bool, False),
    ("x", str, True), (3, str, False),
    (None, int | None, True), (None, int, False), (2, int | None, True),
    ("mean", Literal["mean", "last"], True), ("max", Literal["mean", "last"], False),
    ([1, 2], list[int], True), ("12", list[int], False), ({"a": "b"}, dict[str, str], True),
    (object(), complex, True),  # a type the checker does not know: left to the call
])
def test_conforms(value: object, hint: object, ok: bool) -> None:
    assert conforms(value, hint) is ok


def test_describe() -> None:
    assert describe(int) == "an integer"
    assert describe(int | None) == "an integer or null"
    assert describe(int | float | None) == "a finite number or null"
    assert describe(Literal["a", "b"]) == "one of 'a', 'b'"


@dataclass
class Settings:
    n: int
    rate: float
    on: bool


def test_fields_and_arguments_name_the_key() -> None:
    check_fields(Settings(1, 0.5, True), "s")
    with pytest.raises(InputError, match=r"^s.n: expected an integer, got 1.5$"):
        check_fields(Settings(1.5, 0.5, True), "s")  # type: ignore[arg-type]

    def loss(x: object, beta: float, smoothing: float = 0.0) -> None: ...

    check_arguments(loss, {"beta": 0.1}, key=lambda name: f"loss.{name}")
    with pytest.raises(InputError, match=r"^loss.beta: expected a finite number, got nan$"):
        check_arguments(loss, {"beta": math.nan}, key=lambda name: f"loss.{name}")
    check_arguments(loss, {"unknown": "left to the call"}, key=str)
