"""Write ``tests/golden/recipes.json`` (see ``compute.py``): only after a change meant to change numbers.

    python tests/golden/make_golden.py
"""

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MERC_BENCH_CACHE"] = cache
        import compute

        values = compute.everything()
    (HERE / "recipes.json").write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {HERE / 'recipes.json'}: {len(values)} recipes")
