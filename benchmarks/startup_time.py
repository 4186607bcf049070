"""Start-up time of featcell's common paths against numpy + scipy + scikit-learn.

Each command runs in a fresh interpreter, the commands interleaved, ``--runs`` times;
the table gives the median wall time and the difference to the reference
``import numpy, scipy, sklearn``. Run from the repository root:

    python benchmarks/startup_time.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python (nothing)": "pass",
    "import numpy, scipy, sklearn": "import numpy, scipy, sklearn",
    "import featcell": "import featcell",
    "import featcell.cli": "import featcell.cli",
    "featcell --help": "import sys; sys.argv = ['featcell', '--help']\n"
                       "from featcell.cli import main; main()",
    "what extract imports": "import featcell.cli, featcell.batch, featcell.features.cell_features",
    "import featcell.persist": "import featcell.persist",
    "import featcell.report": "import featcell.report",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    times = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, code in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    reference = statistics.median(times["import numpy, scipy, sklearn"])
    print(f"{'command':<32} {'median s':>9} {'vs numpy+scipy+sklearn':>24}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32} {median:9.2f} {median - reference:+24.2f}")


if __name__ == "__main__":
    main()
