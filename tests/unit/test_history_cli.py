"""``ticktide data fetch`` and ``ticktide workflow run`` without --prices, against the local history server."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ticktide.cli import main
from tests.helpers import write_small_workflow_config
from tests.history_server import VOLUME, HistoryServer, stock_closes

SYMBOLS = ["AAPL", "GE", "WMT"]


@pytest.fixture
def srv(monkeypatch):
    closes = stock_closes(SYMBOLS, "2015-01-01", "2017-12-31")
    with HistoryServer() as s:
        for sym in SYMBOLS:
            s.serve("yahoo", sym, closes[sym])
        for k, v in s.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
        s.closes = closes
        yield s


def test_fetch_writes_the_long_bars_file(srv, tmp_path, capsys):
    out = tmp_path / "prices.csv"
    rc = main(["data", "fetch", "--symbols", "AAPL,GE", "--start", "2017-01-01", "--end", "2017-06-30",
               "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["date", "symbol", "open", "high", "low", "close", "adj_close", "volume", "source"]
    assert set(df["source"]) == {"yahoo"} and set(df["symbol"]) == {"AAPL", "GE"}
    want = srv.closes.loc["2017-01-01":"2017-06-30", "AAPL"]
    assert df[df.symbol == "AAPL"]["close"].to_numpy() == pytest.approx(want.to_numpy())
    err = capsys.readouterr().err
    assert f"AAPL: {len(want)} bars from yahoo; completeness 1.000, accuracy 1.000" in err


def test_fetch_parquet_and_wide(srv, tmp_path):
    pq = tmp_path / "p.parquet"
    assert main(["data", "fetch", "--symbols", "AAPL", "--start", "2017-01-01", "--end", "2017-03-31",
                 "--out", str(pq), "--cache-dir", str(tmp_path / "c")]) == 0
    q1 = len(srv.closes.loc["2017-01-01":"2017-03-31"])
    assert len(pd.read_parquet(pq)) == q1
    wide = tmp_path / "w.csv"
    assert main(["data", "fetch", "--symbols", "AAPL,GE", "--start", "2017-01-01", "--end", "2017-03-31",
                 "--out", str(wide), "--format", "wide", "--cache-dir", str(tmp_path / "c")]) == 0
    w = pd.read_csv(wide)
    assert list(w.columns) == ["date", "AAPL", "GE"] and len(w) == q1
    assert srv.requests["yahoo"] == 2  # AAPL came from the cache the second time


def test_a_symbol_nobody_serves_is_one_line_and_the_rest_is_written(srv, tmp_path, capsys):
    out = tmp_path / "p.csv"
    rc = main(["data", "fetch", "--symbols", "AAPL,ZZZZ", "--start", "2017-01-01", "--end", "2017-03-31",
               "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 0 and set(pd.read_csv(out)["symbol"]) == {"AAPL"}
    lines = [line for line in err.splitlines() if "ZZZZ" in line]
    assert lines == ["ticktide data fetch: ZZZZ: no source could serve it: yahoo: No data found, symbol may be "
                     "delisted; stooq: no data"]
    rc = main(["data", "fetch", "--symbols", "AAPL,ZZZZ", "--start", "2017-01-01", "--end", "2017-03-31",
               "--out", str(out), "--cache-dir", str(tmp_path / "c"), "--strict"])
    assert rc == 2


@pytest.mark.parametrize("args, message", [
    (["--symbols", " , "], "--symbols is empty"),
    (["--start", "2017-13-01"], "--start/--end"),
    (["--end", "2016-01-01"], "is before --start"),
    (["--sources", "yahoo,bloomberg"], "unknown source bloomberg"),
    (["--out", "prices.txt"], "give a .csv or .parquet file"),
    (["--interval", "7m"], "--interval 7m"),
])
def test_bad_arguments_are_one_line_errors(srv, tmp_path, capsys, args, message):
    base = {"--symbols": "AAPL", "--start": "2017-01-01", "--end": "2017-03-31", "--out": str(tmp_path / "p.csv")}
    it = iter(args)
    base.update(dict(zip(it, it)))
    rc = main(["data", "fetch", *[x for kv in base.items() for x in kv], "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("ticktide data fetch: ") and message in err[0]


def _without_source_fields(results: dict) -> dict:
    results = dict(results)
    data = dict(results.pop("data"))
    for k in ("sources", "quality", "errors", "dropped", "fetched_from", "prices_file"):
        data.pop(k, None)
    return {**results, "data": data}


def test_workflow_without_prices_equals_the_same_workflow_on_the_equivalent_csv(srv, tmp_path):
    cfg = write_small_workflow_config(tmp_path)
    common = ["--symbols", ",".join(SYMBOLS), "--start", "2017-03-01", "--end", "2017-06-30",
              "--config", str(cfg), "--no-progress", "--no-report"]
    assert main(["workflow", "run", *common, "--out", str(tmp_path / "fetched"),
                 "--cache-dir", str(tmp_path / "c")]) == 0
    # the equivalent CSV: the same real closes, in the long format, as the server served them
    px = srv.closes.loc["2016-01-01":"2017-06-30"].stack().rename("close").reset_index()
    px.columns = ["date", "symbol", "close"]
    px["date"] = px["date"].dt.strftime("%Y-%m-%d")
    csv = px.assign(open=px.close, high=px.close, low=px.close, adj_close=px.close, volume=VOLUME)
    csv.to_csv(tmp_path / "equivalent.csv", index=False)
    assert main(["workflow", "run", *common, "--out", str(tmp_path / "file"),
                 "--prices", str(tmp_path / "equivalent.csv")]) == 0
    fetched = json.loads((tmp_path / "fetched" / "results.json").read_text())
    from_file = json.loads((tmp_path / "file" / "results.json").read_text())
    assert fetched["data"]["sources"]["AAPL"]["source"] == "yahoo"
    assert fetched["data"]["quality"]["GE"]["completeness"] == 1.0
    assert fetched["data"]["price_field"] == {s: "adj_close" for s in SYMBOLS}
    assert len(fetched["trades"]) > 0 and len(fetched["rebalances"]) > 0
    assert _without_source_fields(fetched) == _without_source_fields(from_file)
    # and on the file `data fetch` writes (Parquet), from the cache
    before = srv.requests["yahoo"]
    assert main(["data", "fetch", "--symbols", ",".join(SYMBOLS), "--start", fetched["data"]["fetched_from"],
                 "--end", "2017-06-30", "--out", str(tmp_path / "p.parquet"), "--cache-dir", str(tmp_path / "c")]) == 0
    assert srv.requests["yahoo"] == before
    assert main(["workflow", "run", *common, "--out", str(tmp_path / "pq"), "--prices", str(tmp_path / "p.parquet")]) == 0
    from_fetch_file = json.loads((tmp_path / "pq" / "results.json").read_text())
    assert _without_source_fields(from_fetch_file) == _without_source_fields(from_file)


def test_workflow_report_names_the_sources(srv, tmp_path):
    cfg = write_small_workflow_config(tmp_path)
    rc = main(["workflow", "run", "--symbols", "AAPL,GE,WMT,ZZZZ", "--start", "2017-03-01", "--end", "2017-04-28",
               "--config", str(cfg), "--no-progress", "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert rc == 0  # three served symbols hold 100 % under max_weight 0.4
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["symbols"] == ["AAPL", "GE", "WMT"] and r["data"]["errors"][0].startswith("ZZZZ: no source could serve it")
    report = (tmp_path / "o" / "report.md").read_text()
    assert "## Data" in report and "| AAPL | yahoo | adj_close | 100.00% | 100.00% |" in report
    assert "Not served: ZZZZ" in report


def test_publish_puts_bars_on_bars_v1_in_date_order(srv, tmp_path, capsys):
    import asyncio

    import msgspec

    from schemas.events import Bar
    from streaming.bus import open_bus, reset_memory_buses

    reset_memory_buses()
    url = "memory://history-publish"
    assert main(["data", "publish", "--symbols", "AAPL,GE", "--start", "2017-01-01", "--end", "2017-01-31",
                 "--bus", url, "--cache-dir", str(tmp_path / "c")]) == 0
    records = asyncio.run(open_bus(url).read_all("bars.v1"))
    bars = [msgspec.json.decode(r.value, type=Bar) for r in sorted(records, key=lambda r: (r.partition, r.offset))]
    days = srv.closes.loc["2017-01-01":"2017-01-31"].index
    assert len(bars) == 2 * len(days)
    for sym in ("AAPL", "GE"):  # each symbol's partition holds its bars in date order
        assert [b.ts_event for b in bars if b.symbol == sym] == sorted(b.ts_event for b in bars if b.symbol == sym)
    first = min(bars, key=lambda b: (b.ts_event, b.symbol))
    assert first.symbol == "AAPL" and first.source == "yahoo" and first.interval == "1d"
    assert first.ts_event == int(pd.Timestamp(days[0], tz="UTC").value + 21 * 3600 * 10**9)
    assert first.close == pytest.approx(srv.closes.loc[days[0], "AAPL"])
    # a file written by `data fetch` publishes the same bars
    assert main(["data", "fetch", "--symbols", "AAPL,GE", "--start", "2017-01-01", "--end", "2017-01-31",
                 "--out", str(tmp_path / "p.csv"), "--cache-dir", str(tmp_path / "c")]) == 0
    reset_memory_buses()
    assert main(["data", "publish", "--input", str(tmp_path / "p.csv"), "--bus", url]) == 0
    again = [msgspec.json.decode(r.value, type=Bar) for r in sorted(asyncio.run(open_bus(url).read_all("bars.v1")),
                                                                  key=lambda r: (r.partition, r.offset))]
    assert [(b.symbol, b.ts_event, b.close, b.source) for b in again] == \
        [(b.symbol, b.ts_event, b.close, b.source) for b in bars]
    # a row that cannot be a bar is named, not silently dropped
    table = pd.read_csv(tmp_path / "p.csv")
    table.loc[0, "close"] = 0.0
    table.to_csv(tmp_path / "bad.csv", index=False)
    reset_memory_buses()
    capsys.readouterr()
    assert main(["data", "publish", "--input", str(tmp_path / "bad.csv"), "--bus", url]) == 0
    err = capsys.readouterr().err
    assert f"1 rows without a positive close are not published, e.g. AAPL {table.loc[0, 'date']}: close 0.0" in err
    assert f"{len(bars) - 1} bars -> bars.v1" in err
    assert main(["data", "publish", "--input", str(tmp_path / "missing.csv"), "--bus", url]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ticktide data publish: argument --input: no such file:"), last


def test_the_history_table_of_a_config_file(srv, tmp_path, capsys):
    cfg = tmp_path / "h.toml"
    cfg.write_text('[history]\nsources = ["stooq"]\nretries = 0\n')
    rc = main(["data", "fetch", "--symbols", "AAPL", "--start", "2017-01-01", "--end", "2017-01-31",
               "--out", str(tmp_path / "p.csv"), "--config", str(cfg), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "AAPL: no source could serve it: stooq: no data" in err and srv.requests["yahoo"] == 0
    cfg.write_text('[history]\nyahoo_ulr = "http://x"\n')
    rc = main(["data", "fetch", "--symbols", "AAPL", "--start", "2017-01-01", "--end", "2017-01-31",
               "--out", str(tmp_path / "p.csv"), "--config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "yahoo_ulr" in err[0] and err[0].startswith("ticktide data fetch: ")


def test_a_listing_inside_the_warm_up_is_not_a_failure(srv, tmp_path):
    cfg = write_small_workflow_config(tmp_path)
    srv.serve("yahoo", "NEWCO", srv.closes.loc["2017-02-01":, "GE"])  # listed a month before --start
    # three symbols with history besides NEWCO: max_weight 0.4 can hold 100 % before NEWCO qualifies
    rc = main(["workflow", "run", "--symbols", "AAPL,GE,WMT,NEWCO", "--start", "2017-03-01", "--end", "2017-04-28",
               "--config", str(cfg), "--no-progress", "--no-report", "--out", str(tmp_path / "o"),
               "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["symbols"] == ["AAPL", "GE", "WMT", "NEWCO"] and r["data"]["sources"]["NEWCO"]["source"] == "yahoo"
    assert r["data"]["quality"]["NEWCO"]["completeness"] == 1.0
