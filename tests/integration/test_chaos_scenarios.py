"""Short form of the chaos scenarios (tests/chaos/chaos.py) on the real
broker: 3 workers on a 12-partition topic under steady load, one fault per
scenario, in both delivery modes. Targets: nothing lost; exactly-once
readers (read_committed) see no duplicate; at-least-once repeats replies
only after a kill, and then no more than the in-flight window.

The long form (>= 100k requests, 10 kills) is `python3 tests/chaos/run.py
--long`; its table is in docs/RELIABILITY.md."""

import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
import chaos  # noqa: E402
import run as chaos_run  # noqa: E402

SHORT = chaos_run.SHORT


@pytest.mark.parametrize("mode", chaos.MODES)
@pytest.mark.parametrize("scenario", ["add-worker", "remove-worker", "kill-worker",
                                      "broker-restart", "slow-model"])
def test_chaos(scenario, mode, tmp_path, bootstrap, kinfer_bin, kafka_ctl, schemas, request):
    if scenario == "broker-restart" and mode == "exactly-once":
        # A known open defect, not a pass: it still runs and reports XFAIL
        # or XPASS with its table row (docs/RELIABILITY.md, "Fault harness").
        request.node.add_marker(pytest.mark.xfail(strict=False, reason=(
            "KNOWN DEFECT (open): after a broker restart under load, exactly-once replies "
            "can stay invisible to read_committed readers past the settle time (CI 2026-12-02: "
            "lost 1409 on librdkafka 2.0.2 with a fatal EndTxn, lost 552 on 2.14.2 with all "
            "workers alive); see docs/RELIABILITY.md")))
    # Our own admin client: a quiet one (the broker restart makes the
    # session's admin client print a screen of reconnect errors).
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=chaos.QUIET)
    count, rate = SHORT["count"], SHORT["rate"]
    if scenario == "kill-worker":
        count, rate = SHORT["kill_count"], SHORT["kill_rate"]
    with chaos.Chaos(bootstrap=bootstrap, kinfer_bin=kinfer_bin, kafka_ctl=kafka_ctl,
                     schemas=schemas, admin=admin, workdir=tmp_path, scenario=scenario,
                     mode=mode, count=count, rate=rate, kills=SHORT["kills"]) as c:
        res = c.run()
        print("\n" + chaos.TABLE_HEAD + "\n" + res.row())
        missed = chaos_run.targets_missed(res)
        assert not missed, f"{missed}\n{res.row()}\n{c.logs_tail()}"
        assert res.sent == count and res.ok == count, res.row()
        # A worker that exits on its own is restarted as a supervisor would
        # (chaos.Chaos._supervise); that is expected only where the fault
        # can be fatal to a transactional producer (a broker restart).
        if scenario != "broker-restart":
            assert not c.restarts, f"a worker exited on its own: {c.restarts}\n{c.logs_tail()}"
        if scenario == "kill-worker":
            assert res.faults == SHORT["kills"], res.row()
        if scenario == "remove-worker":
            assert res.notes["exit"] == 0, c.logs_tail()
        if scenario == "slow-model":
            # Memory stays flat under overload: lag grows instead.
            assert res.notes["lag_at_load_end"] > 0, res.row()
            # after warm-up (weights paged in) the 3 workers grow by < 60 MB
            assert res.notes["rss_mb_peak"] - res.notes["rss_mb_30pct"] < 60, res.row()
