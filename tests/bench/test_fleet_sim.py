"""The fleet simulation (``resilient-aws bench fleet-sim``): small fleets, short phases, in process.

Each fixture simulates 10 and 200 processes, with shared state and alone, in a fraction of a second
(the library's own breakers, budgets and shared state on a simulated clock; see
:mod:`resilient_aws.bench.fleet_sim`). ``WARM`` is the benchmark's scenario: the endpoint served for a
second before it died, so the breakers' windows hold successes. ``COLD`` starts with the endpoint dead:
nothing in any window, so the fleet's own window decides alone. The assertions are the properties the
fleet logic promises, read from the measured numbers; the runs are seeded, so they are reproducible.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from resilient_aws.__main__ import build_parser
from resilient_aws.bench import cli, fleet_sim
from resilient_aws.bench.fleet_sim import QUICK, REDIS_LIMIT, markdown, simulate, verdicts
from resilient_aws.policy import BreakerPolicy

SMALL, LARGE = 10, 200
WARM = dataclasses.replace(QUICK, sizes=(SMALL, LARGE))
COLD = dataclasses.replace(WARM, warmup=0.0)
#: After its open time, a breaker waits for its process's next call before it claims the probe lease:
#: with calls every 1/rate s (Poisson) over 10 processes, 0.3 s covers that with room to spare.
ARRIVAL_SLACK = 0.3
#: The operations that only the breaker's open/probe cycle makes: one claim and one result per open_time.
CYCLE_OPERATIONS = ("open", "claim", "probe_done", "release")


def _runs(settings: fleet_sim.Settings) -> dict[tuple[int, bool], fleet_sim.Row]:
    return {(n, shared): simulate(settings, n, shared) for n in (SMALL, LARGE) for shared in (True, False)}


@pytest.fixture(scope="module")
def warm():
    return _runs(WARM)


@pytest.fixture(scope="module")
def cold():
    return _runs(COLD)


@pytest.fixture(params=["warm", "cold"])
def runs(request):
    return request.getfixturevalue(request.param), WARM if request.param == "warm" else COLD


def test_once_the_breaker_is_open_a_fleet_of_any_size_sends_one_probe_per_open_time(runs):
    rows, s = runs
    per_interval = s.dead / s.open_time + 1
    for n in (SMALL, LARGE):
        row = rows[n, True]
        assert row.dead_known == row.probes_dead  # a process that knows sends nothing but probes
        assert row.probes_dead <= per_interval
        # the only other requests after the opening: calls made while the news was on its way
        assert row.dead_spreading <= 3 * n * s.rate * s.latency + 1


def test_with_shared_state_the_dead_endpoint_gets_far_fewer_requests_than_each_process_alone(runs):
    rows, _ = runs
    for n in (SMALL, LARGE):
        assert rows[n, True].dead_requests < rows[n, False].dead_requests
    # alone, every process probes for itself: the probes grow with the fleet
    assert rows[LARGE, True].dead_after_open * 10 < rows[LARGE, False].dead_after_open
    assert rows[LARGE, False].probes_per_s > 10 * rows[LARGE, True].probes_per_s


def test_with_no_history_the_fleet_opens_on_min_calls_failures_fleet_wide_so_requests_grow_far_less_than_linearly(
        cold):
    growth = LARGE / SMALL
    shared = cold[LARGE, True].dead_requests / cold[SMALL, True].dead_requests
    alone = cold[LARGE, False].dead_requests / cold[SMALL, False].dead_requests
    assert shared < growth / 4, shared
    assert alone > growth / 2  # each process alone needs its own min_calls failures
    # the fleet opens as soon as min_calls failures have come back from anywhere in the fleet
    assert cold[LARGE, True].first_open_s <= COLD.fail_after + 0.05


def test_at_most_one_probe_is_in_flight_fleet_wide_and_one_per_open_interval(runs):
    rows, s = runs
    for n in (SMALL, LARGE):
        row = rows[n, True]
        assert row.probes_dead >= 1
        assert row.max_concurrent_probes == 1
        if row.min_probe_gap_s is not None:
            assert row.min_probe_gap_s >= s.open_time  # the next claim waits for the failed probe's open time
    assert rows[LARGE, False].max_concurrent_probes > 1  # alone, processes probe at the same time


def test_the_fleet_recovers_within_open_time_jitter_and_latencies(runs):
    rows, s = runs
    jitter = BreakerPolicy().open_jitter
    # a probe sent just before the heal fails, the fleet stays open for open_time (+ each process's jitter),
    # then one probe succeeds and its result is published to every process
    bound = s.fail_after + s.open_time * (1 + jitter) + s.serve_after + 3 * s.latency + ARRIVAL_SLACK
    for n in (SMALL, LARGE):
        row = rows[n, True]
        assert row.recovery_s is not None and row.recovery_s <= bound, (n, row.recovery_s, bound)
        assert row.closed_at_end == 1.0
        assert row.served_after_heal > 0


def test_store_commands_per_process_are_few_and_the_probe_cycle_costs_the_same_at_any_fleet_size(runs):
    rows, s = runs
    duration = s.dead + s.healed
    for n in (SMALL, LARGE):
        row = rows[n, True]
        assert row.commands_per_process_s < s.rate / 4  # far fewer store commands than calls
        assert sum(row.by_operation[op] for op in CYCLE_OPERATIONS) <= 2 * (duration / s.open_time + 2)
        assert row.published <= 2 * (duration / s.open_time + 2)
        assert row.deliveries == row.published * n
    # per process, the load does not grow with the fleet (it varies with how long the detection took)
    assert rows[LARGE, True].commands_per_process_s <= 2 * rows[SMALL, True].commands_per_process_s


def test_the_busiest_second_projected_to_10000_processes_stays_under_a_tenth_of_one_redis(warm):
    row = warm[LARGE, True]
    assert row.peak_commands_per_s / LARGE * 10_000 < REDIS_LIMIT


def test_a_run_is_reproducible_from_its_seed():
    def numbers(row: fleet_sim.Row) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(row).items() if k != "wall_s"}

    assert numbers(simulate(WARM, SMALL, True)) == numbers(simulate(WARM, SMALL, True))
    other = dataclasses.replace(WARM, seed=WARM.seed + 1)
    assert numbers(simulate(other, SMALL, True)) != numbers(simulate(WARM, SMALL, True))


def test_the_verdicts_are_computed_from_the_rows(warm):
    rows = list(warm.values())
    found = {v.goal: v for v in verdicts(rows, WARM)}
    assert found["Probes stay flat"].met
    assert found["Requests to a dead endpoint stay flat once the breaker is open"].met
    many = dataclasses.replace(warm[LARGE, True], probes_per_s=warm[SMALL, True].probes_per_s * 10)
    flipped = {v.goal: v for v in verdicts([warm[SMALL, True], many], WARM)}
    assert not flipped["Probes stay flat"].met
    quiet = dataclasses.replace(warm[LARGE, True], peak_commands_per_s=1)
    assert {v.goal: v for v in verdicts([warm[SMALL, True], quiet], WARM)}[
        f"Redis load at 10,000 processes under {REDIS_LIMIT:,.0f} commands/s"].met


def test_the_markdown_holds_both_tables_the_conditions_and_a_verdict_per_goal(warm):
    text = markdown(list(warm.values()), WARM)
    assert f"| {LARGE:,} | {warm[LARGE, True].dead_requests:,} |" in text
    assert "| processes | commands/s | busiest second |" in text
    assert f"Seed {WARM.seed}." in text and "Store round trip and pub/sub delivery 0.5 ms" in text
    assert sum(line.startswith("- **") for line in text.splitlines()) == 3


def test_bench_fleet_sim_is_a_subcommand_with_sizes_and_runs_in_process(capsys):
    args = build_parser().parse_args(["bench", "fleet-sim", "--quick", "--sizes", "10", "20"])
    chosen = cli.settings(args, fleet_sim.Settings(), QUICK, sizes="sizes")
    assert list(chosen.sizes) == [10, 20] and chosen.dead == QUICK.dead
    assert cli.run(args) == 0
    out = capsys.readouterr()
    assert "| 20 |" in out.out and "Probes stay flat" in out.out
    assert "20 processes, shared" in out.err  # progress on stderr
    assert build_parser().parse_args(["bench"]).which == "all" and "fleet-sim" not in cli.BENCHMARKS


def test_the_benchmarks_script_replaces_its_section_and_keeps_the_rest(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_sim.py"
    spec = importlib.util.spec_from_file_location("fleet_sim_script", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 4. The outage drill\n\ndrill\n", encoding="utf-8")
    script.put_section(results, script.section("| old |", 1.0, "resilient-aws bench fleet-sim"))
    script.put_section(results, script.section("| new |", 2.0, "resilient-aws bench fleet-sim"))
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n## 4. The outage drill\n\ndrill\n\n## 6. Past one machine")
    assert "| new |" in text and "| old |" not in text and text.count("## 6.") == 1
