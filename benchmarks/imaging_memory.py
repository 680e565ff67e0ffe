"""Peak memory of decoding one real radiograph (tests/data/README.md: the ankle CR of pydicom-data, 1760 x 1760,
10 bit), as stored and re-encoded (RLE Lossless, and as 8-bit RGB), each case in its own child process:
tracemalloc's peak (numpy's arrays included) and the process's peak resident set (ru_maxrss) after importing.

    python benchmarks/imaging_memory.py [--dir /tmp/imaging-memory]

Prints one line per case: the file, its size, the pixels' size, measure=True/False, the traced peak in MB and
the peak as a multiple of the pixels' own size. The figures depend on nothing but the code and the file."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_files(folder: Path) -> dict[str, Path]:
    from tests.imaging.real_films import film_path, variants

    return {"ankle as stored": film_path("ankle"), **variants(folder)}


def child(path: str, measure: bool) -> None:
    import hashlib
    import resource
    import tracemalloc

    from orthoreg.imaging import dicomio

    dicomio.load_image(path, measure=measure)  # imports and caches settle
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    loaded = dicomio.load_image(path, measure=measure)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pixels = loaded.height * loaded.width * (3 if loaded.photometric == "RGB" else 2 if loaded.bits > 8 else 1)
    print(json.dumps({"peak": peak, "pixels": pixels, "rss_growth_kb": after - before,
                      "display": hashlib.sha256(loaded.display.tobytes()).hexdigest()[:12],
                      "intensities": hashlib.sha256(loaded.intensities.tobytes()).hexdigest()[:12]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/imaging-memory")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return
    for name, path in make_files(Path(args.dir)).items():
        for measure in (True, False):
            out = subprocess.run([sys.executable, __file__, "--child", str(path), "1" if measure else "0"],
                                 check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{name:16} {path.stat().st_size / 1e6:6.1f} MB file  measure={measure!s:5}  peak "
                  f"{row['peak'] / 1e6:6.1f} MB = {row['peak'] / row['pixels']:5.2f} x pixels "
                  f"({row['pixels'] / 1e6:.1f} MB)  display {row['display']} intensities {row['intensities']}")


if __name__ == "__main__":
    main()
