"""Print the firmware's storage write points as a markdown table for
docs/hazards.md: ``python tests/firmware/writepoints_table.py``.

The rows come from WRITE_POINTS in test_write_points.py, which a test keeps
equal to what the firmware really writes.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _p in (str(HERE.parents[1] / "firmware"), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def markdown(rows):
    """rows of (call site, op, file, what it protects) -> a markdown table."""
    lines = ["| call site | op | file | protects |", "|---|---|---|---|"]
    for site, op, name, what in rows:
        lines.append(f"| `{site}` | {op} | `{name}` | {what} |")
    return "\n".join(lines)


def main():
    from test_write_points import write_point_rows

    print(markdown(write_point_rows()))


if __name__ == "__main__":
    main()
