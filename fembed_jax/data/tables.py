"""Reading a raw table file: parquet, or CSV as people actually have them.

CSV files come with `,`, `;`, tab or `|` between fields, and with yfinance's multi-row header:
current `yfinance.download(...).to_csv()` writes its (Price, Ticker) column levels as two header
rows plus a row holding only the index name:

    Price,Adj Close,Close,High,Low,Open,Volume
    Ticker,SPY,SPY,SPY,SPY,SPY,SPY
    Date,,,,,,
    1999-01-04,...
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import pandas as pd

from fembed_jax.data.errors import DataError

DELIMITERS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"\d,\d")
_DECIMAL_POINT = re.compile(r"\d\.\d")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or parquet file; a Date index (as yfinance writes it) becomes a Date column."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    suffix = "".join(p.suffixes[-2:]).lower()
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix.endswith((".csv", ".csv.gz")):
            df = _read_csv(p)
        else:
            raise DataError(f"{p}: unsupported file type {p.suffix!r} (use .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise DataError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from None
    if "Date" not in df.columns and "date" not in df.columns and df.index.name in ("Date", "date"):
        df = df.reset_index()
    return df


def _head(p: Path, size: int = 1 << 16) -> str:
    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        return fh.read(size)


def _delimiter(header: str) -> str:
    """The separator the header line uses most; "," when it has none (a one-column file).

    Counted on the header rather than guessed by csv.Sniffer, which weighs quoting and per-line
    consistency and can pick a wrong character on purely numeric rows.
    """
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _yfinance_header(rows: list[list[str]], where: Path) -> tuple[list[str], int] | None:
    """(column names, header rows to skip) for yfinance's Price/Ticker header, else None."""
    if len(rows) < 2 or not rows[0] or not rows[1]:
        return None
    first = {rows[0][0].strip(), rows[1][0].strip()}
    if first != {"Price", "Ticker"}:
        return None
    prices, tickers = (rows[0], rows[1]) if rows[0][0].strip() == "Price" else (rows[1], rows[0])
    distinct = sorted({t.strip() for t in tickers[1:] if t.strip()})
    if len(distinct) > 1:
        raise DataError(
            f"{where}: yfinance file with several tickers ({', '.join(distinct)}); save one ticker per file"
        )
    date_row = len(rows) > 2 and rows[2] and rows[2][0].strip().lower() in ("date", "datetime")
    skip = 3 if date_row and not any(c.strip() for c in rows[2][1:]) else 2
    return ["Date", *(c.strip() for c in prices[1:])], skip


def _read_csv(p: Path) -> pd.DataFrame:
    head = _head(p)
    if not head.strip():
        raise DataError(f"{p}: the file is empty")
    lines = head.splitlines()
    sep = _delimiter(lines[0])
    options: dict = {"sep": sep}
    # "1229,23" with ";" between fields is a decimal comma (spreadsheets in many locales write it).
    body = "\n".join(lines[1:20])
    if sep != "," and _DECIMAL_COMMA.search(body) and not _DECIMAL_POINT.search(body):
        options["decimal"] = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines[:3])), delimiter=sep))
    yf = _yfinance_header(rows, p)
    if yf is not None:
        names, skip = yf
        return pd.read_csv(p, header=None, skiprows=skip, names=names, **options)
    return pd.read_csv(p, **options)
