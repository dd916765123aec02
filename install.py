"""ComfyUI-Manager install hook (run once after ``pip install -r requirements.txt``).

insightface is installed without its dependencies: it declares opencv-python
(the GUI build), which clashes with the headless build ComfyUI setups use.
"""

import importlib.util
import subprocess
import sys


def main() -> None:
    if importlib.util.find_spec("insightface") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "insightface>=0.7"], check=True)


if __name__ == "__main__":
    main()
