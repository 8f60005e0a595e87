"""`bench_cost`'s set-up: bad arguments are refused with a usage message, and the bare
handlers' database sits beside the server's (making either ready:
tests/benchmarks/test_scratch_db.py)."""

from __future__ import annotations

import pytest

from benchmarks.bench_cost import parse
from benchmarks.cost.seed import bare_dsn


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hz", "0"], "argument --hz: must be positive"),
        (["--rounds", "-1"], "argument --rounds: must be at least 1"),
        (["--sockets", "1"], "--sockets must be at least 2"),
        (["--server-workers", "0"], "argument --server-workers: must be at least 1"),
        (["--database-url", "postgresql://"], "name the database in the URL"),
        (["--bare-database-url", "postgresql://localhost"], "name the database in the URL"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_bare_handlers_database_defaults_to_one_beside_the_servers() -> None:
    args = parse(["--database-url", "postgresql:///zendo_cost_x", "--quick"])
    assert args.bare_database_url == "postgresql:///zendo_cost_x_bare"
    assert args.sockets == 400 and args.rounds == 2


@pytest.mark.parametrize(
    ("dsn", "bare"),
    [
        ("postgresql:///zendo_cost", "postgresql:///zendo_cost_bare"),
        (
            "postgresql://u:p@db:5433/c?sslmode=disable",
            "postgresql://u:p@db:5433/c_bare?sslmode=disable",
        ),
    ],
)
def test_the_bare_database_keeps_the_servers_address(dsn: str, bare: str) -> None:
    assert bare_dsn(dsn) == bare
