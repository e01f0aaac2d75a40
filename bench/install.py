"""The installed package: the core's venv size and install time from the wheel, against the setup's full venv.

    python bench/install.py [--json] [--extras train,hf]    (with the checkout's .venv from `make setup`)

Builds the wheel, installs it into a fresh venv (from PyPI, or pip's cache), and measures the
venv's size and the install's wall time. The baseline is measured in the same run: the checkout's
`.venv` (torch with CUDA, transformers, the test tools), whose size is read from disk. Each extra's
cost is what pip would add to the core venv for it (`pip install --dry-run --report`), summed over
the files those distributions installed in `.venv`: torch is not downloaded again. Every figure is a
ratio to the full venv as well as an absolute one; install times depend on the network, the cache and
the machine's load, so they are printed with the load average.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib.metadata import distributions
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
FULL = CHECKOUT / ".venv"


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _name(dist) -> str:
    return dist.metadata["Name"].lower().replace("_", "-")


def _site(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _installed_size(dist) -> int:
    total = 0
    for f in dist.files or []:
        with contextlib.suppress(OSError):  # a file listed in RECORD but gone
            total += os.path.getsize(dist.locate_file(f))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--extras", default="train,hf",
                        help="extras to price, comma-separated; '' for the core alone (pip's resolver takes minutes "
                             "for each on a loaded machine)")
    args = parser.parse_args()
    if not (FULL / "bin" / "python").exists():
        raise SystemExit(f"no {FULL}: run `make setup` first (it is the baseline)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([str(FULL / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp / "dist"), str(CHECKOUT)], check=True, capture_output=True)
        wheel = next((tmp / "dist").glob("modelreg-*.whl"))
        wheel_bytes = wheel.stat().st_size
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "core")], check=True)
        start = time.perf_counter()
        subprocess.run([str(tmp / "core" / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
        install_s = time.perf_counter() - start
        core_bytes, full_bytes = _du(tmp / "core"), _du(FULL)
        core_names = {_name(d) for d in distributions(path=[_site(tmp / "core")])}
        in_full = {_name(d): d for d in distributions(path=[_site(FULL)])}
        extras, counted = {}, set(core_names) | {"modelreg"}
        for extra in filter(None, args.extras.split(",")):
            report = tmp / f"{extra}.json"
            subprocess.run([str(tmp / "core" / "bin" / "pip"), "install", "-q", "--dry-run", "--report", str(report),
                            f"{wheel}[{extra}]"], check=True, capture_output=True)
            names = {i["metadata"]["name"].lower().replace("_", "-")
                     for i in json.loads(report.read_text())["install"]} - counted
            counted |= names
            sizes = {n: _installed_size(in_full[n]) for n in names if n in in_full}
            extras[extra] = {"added_bytes": sum(sizes.values()), "packages": len(names),
                             "not_in_full_venv": sorted(names - set(sizes)),
                             "largest": sorted(sizes, key=sizes.get, reverse=True)[:5]}
    result = {"wheel_bytes": wheel_bytes, "core_venv_bytes": core_bytes, "core_install_s": round(install_s, 1),
              "full_venv_bytes": full_bytes, "core_to_full": round(core_bytes / full_bytes, 4),
              "extras": extras, "load_average": os.getloadavg(), "python": sysconfig.get_python_version()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    mb = 1e6
    print(f"wheel {result['wheel_bytes'] / 1e3:.0f} KB; core venv {core_bytes / mb:.0f} MB, installed in {install_s:.0f} s "
          f"(load {result['load_average'][0]:.1f}); full .venv {full_bytes / mb:.0f} MB: the core is "
          f"{result['core_to_full']:.3f}x of it ({full_bytes / core_bytes:.0f}x smaller)")
    for extra, e in extras.items():
        print(f"[{extra}] adds {e['added_bytes'] / mb:.0f} MB in {e['packages']} packages "
              f"({e['added_bytes'] / full_bytes:.2f}x the full venv), largest {', '.join(e['largest'])}")


if __name__ == "__main__":
    main()
