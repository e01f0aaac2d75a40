"""The safetensors reader on hostile headers: seconds per MB of header, against the safetensors library.

    python bench/reader.py [--json] [--mb 4] [--repeat 3]

Each family builds a header of about --mb megabytes designed to be slow for some parser: many
tensors, one huge shape, deep nesting, a huge integer, long strings full of escapes, millions of
metadata keys, unterminated strings. Both parsers read the same bytes in this process; the best of
--repeat runs is kept. The ratio is ours over the library's (Rust, serde_json) on the same file;
the figure to watch is our worst seconds per MB across families, and that it stays flat as --mb
grows (linear time). The library's time includes building its tensors, which for these headers
hold zero bytes or are refused first.
"""

import argparse
import json
import struct
import time

import safetensors

from modelreg.errors import CheckpointInvalid
from modelreg.formats.safetensors import parse_header

ZERO = '{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'


def _fill(size: int, head: str, unit: str, tail: str, sep: str = "") -> str:
    count = max(1, (size - len(head) - len(tail)) // (len(unit) + len(sep)))
    return head + sep.join([unit] * count) + tail


def families(size: int) -> dict[str, str]:
    per_tensor = len(f'"layer.0000000.weight":{ZERO},')
    return {
        "zero-size tensors (valid up to the tensor limit)":
            "{" + ",".join(f'"layer.{i:07d}.weight":{ZERO}' for i in range(min(size // per_tensor, 100_000))) + "}",
        "one shape of a million dimensions":
            _fill(size, '{"a":{"dtype":"F32","shape":[', "1", '],"data_offsets":[0,4]}}', ","),
        "deep nesting":
            _fill(size // 2, '{"a":', "[", "") + "]" * (size // 2) + "}",
        "a huge integer": _fill(size, '{"a":{"dtype":"F32","shape":[0,', "9", '],"data_offsets":[0,0]}}'),
        "a long name full of escapes": _fill(size, '{"', "\\\"\\u00e9", '":' + ZERO + "}"),
        "a long metadata value (valid)": _fill(size, '{"__metadata__":{"k":"', "x", '"},"a":' + ZERO + "}"),
        "many metadata keys (valid up to the key limit)":
            "{" + '"__metadata__":{' + ",".join(f'"{i}":"v"' for i in range(min(size // 10, 400_000))) + '},"a":' + ZERO + "}",
        "an unterminated string of escaped quotes": _fill(size, '{"a":"', '\\"', ""),
        "lists of empty lists": _fill(size, '{"a":{"dtype":"F32","shape":[', "[]", '0],"data_offsets":[0,0]}}', ","),
    }


def _best(run, repeat: int) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            run()
            outcome = "accepted"
        except CheckpointInvalid:
            outcome = "refused (CheckpointInvalid)"
        except Exception as e:  # the library's refusals; ours must only ever be CheckpointInvalid
            outcome = f"refused ({type(e).__name__})"
        best = min(best, time.perf_counter() - start)
    return best, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--mb", type=float, default=4.0, help="header size of each family, in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    args = parser.parse_args()
    rows = []
    for name, header in families(int(args.mb * 1_000_000)).items():
        raw = header.encode("utf-8")
        data = struct.pack("<Q", len(raw)) + raw + (bytes(4) if "million" in name else b"")
        ours, our_outcome = _best(lambda d=data: parse_header(d, len(d)), args.repeat)
        theirs, their_outcome = _best(lambda d=data: safetensors.deserialize(d), args.repeat)
        mb = len(raw) / 1e6
        rows.append({"family": name, "header_mb": round(mb, 3), "ours_s": ours, "ours_s_per_mb": ours / mb,
                     "ours": our_outcome, "library_s": theirs, "library_s_per_mb": theirs / mb,
                     "library": their_outcome, "ratio": ours / theirs if theirs else None})
    worst = max(rows, key=lambda r: r["ours_s_per_mb"])
    summary = {"worst_family": worst["family"], "worst_s_per_mb": worst["ours_s_per_mb"],
               "library_worst_s_per_mb": max(r["library_s_per_mb"] for r in rows)}
    if args.json:
        print(json.dumps({"rows": rows, **summary}, indent=2))
        return
    print(f"{'family':<50} {'MB':>6} {'ours s/MB':>10} {'lib s/MB':>10} {'ratio':>7}  ours / library")
    for r in rows:
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        print(f"{r['family']:<50} {r['header_mb']:>6.2f} {r['ours_s_per_mb']:>10.4f} {r['library_s_per_mb']:>10.4f} "
              f"{ratio:>7}  {r['ours']} / {r['library']}")
    print(f"worst: {summary['worst_s_per_mb']:.4f} s per MB of header ({summary['worst_family']}); "
          f"the library's worst: {summary['library_worst_s_per_mb']:.4f} s per MB")


if __name__ == "__main__":
    main()
