"""Rewrite a bitsandbytes wheel with only the native libraries one machine loads: the CPU one and the CUDA build
of that machine's torch (the GPU image's torch is cu130). The wheel holds one library per CUDA, ROCm and XPU
release, 41 of its 44 MiB; the GPU machine loads one of them, and a call carries at most 64 MiB.

    python scripts/gpu/trim_wheel.py WHEEL --keep cpu cuda130

The RECORD lists the files kept, with their hashes as they were, so pip installs the trimmed wheel as the whole.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from pathlib import Path

LIBRARY = re.compile(r"^bitsandbytes/libbitsandbytes_(\w+)\.(so|dylib|dll)$")


def trim(wheel: Path, keep: set[str]) -> tuple[int, int, list[str]]:
    """Drop every ``libbitsandbytes_*`` not in ``keep`` (``cpu``, ``cuda130``...); returns the sizes before and
    after and the libraries kept. Written beside the wheel, then renamed over it: never half a wheel."""
    before = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as source:
        names = source.namelist()
        libraries = {n: m.group(1) for n in names if (m := LIBRARY.match(n))}
        missing = keep - set(libraries.values())
        if missing:
            raise SystemExit(f"trim_wheel: {wheel.name} has no libbitsandbytes_{', '.join(sorted(missing))} "
                             f"(it has {', '.join(sorted(libraries.values()))})")
        dropped = {n for n, kind in libraries.items() if kind not in keep}
        tmp = wheel.with_name(f".{wheel.name}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                if info.filename in dropped:
                    continue
                data = source.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(line for line in lines if line.split(",", 1)[0] not in dropped).encode()
                target.writestr(info, data)
    os.replace(tmp, wheel)
    return before, wheel.stat().st_size, sorted(kind for kind in libraries.values() if kind in keep)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--keep", nargs="+", default=["cpu", "cuda130"],
                        help="the libraries kept, by their suffix (default: %(default)s)")
    args = parser.parse_args(argv)
    before, after, kept = trim(args.wheel, set(args.keep))
    print(f"trim_wheel: {args.wheel.name}: {before:,} -> {after:,} bytes, libraries kept: {', '.join(kept)}")


if __name__ == "__main__":
    sys.exit(main())
