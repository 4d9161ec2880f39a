"""Ship the top-level registry, task folders and paper tables inside the wheel.

`checkpoints.yaml`, `tasks/` and `reports/paper/` stay at the top of the repository (the
layout the README documents, and what an editable checkout reads); a built wheel carries
copies under `silc_bench/_bundled/`, which `silc_bench.config` reads when there is no
checkout around the package.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("checkpoints.yaml", "tasks", "reports/paper")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "silc_bench" / "_bundled"
        shutil.rmtree(target, ignore_errors=True)
        for rel in BUNDLED:
            src, dst = here / rel, target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithData})
