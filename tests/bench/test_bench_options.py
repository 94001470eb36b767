"""The ``bench`` subcommand's options and the timing helpers, in process (no benchmark runs)."""

from __future__ import annotations

import io

import pytest

from resilient_aws.__main__ import build_parser
from resilient_aws.bench import dns, overhead, storm
from resilient_aws.bench.cli import settings
from resilient_aws.bench.timing import Progress, interleaved


def _args(*argv: str):
    return build_parser().parse_args(["bench", *argv])


def test_bench_runs_all_benchmarks_when_none_is_named():
    assert _args().which == "all"


@pytest.mark.parametrize("option", [["--rounds", "0"], ["--calls", "0"], ["--threads", "257"], ["--rate", "0"],
                                    ["--outage", "301"], ["--max-recovery", "0.5"], ["--rounds", "x"]])
def test_bench_rejects_counts_and_times_out_of_bounds(option, capsys):
    with pytest.raises(SystemExit) as exc:
        _args("overhead", *option)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "must be within" in err or "not a number" in err


def test_quick_gives_each_benchmark_its_short_settings():
    args = _args("all", "--quick")
    assert settings(args, overhead.Settings(), overhead.QUICK) == overhead.QUICK
    assert settings(args, dns.Settings(), dns.QUICK) == dns.QUICK
    assert settings(args, storm.Settings(), storm.QUICK) == storm.QUICK


def test_an_option_given_overrides_the_quick_value():
    args = _args("overhead", "--quick", "--rounds", "3")
    chosen = settings(args, overhead.Settings(), overhead.QUICK, rounds="rounds", calls="calls")
    assert chosen == overhead.Settings(rounds=3, calls=overhead.QUICK.calls, http_calls=overhead.QUICK.http_calls)


def test_interleaved_rounds_alternate_the_order_and_print_a_progress_line_each():
    order: list[str] = []
    stream = io.StringIO()
    samples = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3, calls=1,
                          progress=Progress("test", stream), phase="demo")
    assert order[2:] == ["a", "b", "b", "a", "a", "b"]  # after one warm-up call each
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3}
    assert [line.split("demo ")[1].split(":")[0] for line in stream.getvalue().splitlines()] == [
        "round 1/3", "round 2/3", "round 3/3"]
