"""Options several commands share and the argument types of the parser: --var NAME=VALUE,
--model-concurrency MODEL=N, bounded whole numbers, dollar amounts and UTC days."""

from __future__ import annotations

import argparse
from decimal import Decimal

from shotflow.errors import ShotflowError


def add_var_option(p: argparse.ArgumentParser) -> None:
    """--var NAME=VALUE: the same option for validate, estimate and run."""
    p.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="override one of the storyboard's vars (repeatable)"
    )


def parse_vars(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ShotflowError(f"--var {item!r}: write NAME=VALUE")
        values[name] = value
    return values


def parse_model_limits(items: list[str]) -> dict[str, int]:
    from shotflow.catalog import find_model  # here: the parser is built without the catalog

    limits = {}
    for item in items:
        model, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise ShotflowError(f"--model-concurrency {item!r}: write MODEL=N, e.g. veo3=1")
        limits[find_model(model).alias] = int(n)
    return limits


def bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def dollars_argument(text: str) -> Decimal:
    """An amount of dollars given on the command line (`--max-cost 2.50`, `$2.50`): how money is
    written for people is `shotflow.money.usd`."""
    try:
        value = Decimal(text.lstrip("$"))
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars")
    return value


def utc_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: write YYYY-MM-DD") from None
