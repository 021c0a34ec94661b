"""Render nbs/index.ipynb to README.md (nbdev's own README step needs Quarto, which cannot be installed here).

Markdown cells are copied, code cells become ```python blocks followed by their text output, and
links to ../figures/ are rewritten for the repository root. `--check` exits 1 when README.md is stale.
"""
import re
import sys
from pathlib import Path

import nbformat

root = Path(__file__).resolve().parent.parent

def render(nb_path=root / "nbs" / "index.ipynb") -> str:
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for cell in nb.cells:
        src = cell.source.strip()
        if not src or src.startswith("#| hide"): continue
        if cell.cell_type == "markdown":
            src = src.replace("](../figures/", "](figures/").replace('src="../figures/', 'src="figures/')
            # links between notebooks are relative to nbs/; from the repository root they need the prefix
            parts.append(re.sub(r"\]\((?!https?:|#|/|figures/)([^)\s]+)\)", r"](nbs/\1)", src))
        elif cell.cell_type == "code":
            lines = [l for l in src.splitlines() if not l.startswith("#|")]
            parts.append("```python\n" + "\n".join(lines) + "\n```")
            text = "".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                           for o in cell.get("outputs", []) if o.output_type in ("stream", "execute_result"))
            if text.strip(): parts.append("```\n" + text.rstrip() + "\n```")
    return "<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, then `make readme`. -->\n\n" \
        + "\n\n".join(parts) + "\n"

if __name__ == "__main__":
    text, readme = render(), root / "README.md"
    if "--check" in sys.argv:
        if readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of step with nbs/index.ipynb: run `make readme` and commit it.")
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text, encoding="utf-8")
