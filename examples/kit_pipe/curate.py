"""Step 1 of the README's two-script pipe: write a small text dataset and commit it (seed kit style).

python examples/kit_pipe/curate.py rows=2000 | python examples/kit_pipe/train.py steps=5
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from nemotron.kit import Artifact, apply_scale, cli, print_complete


@dataclass
class Config:
    rows: int = 50_000  # before scaling
    scale: str = "tiny"  # tiny, small, medium or full (nemotron's conf/scale)
    output_dir: str = "outputs/curate"
    name: str = "curated-text"


if __name__ == "__main__":
    config = cli(Config, config_file=Path(__file__).with_name("curate.yaml"))
    rows = apply_scale(config.rows, config.scale)
    # a directory of its own per run: a committed version's files are never rewritten by the next run
    out = Path(config.output_dir, time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}").resolve()
    out.mkdir(parents=True)
    (out / "lines.txt").write_text("".join(f"{i} + {i} = {2 * i}\n" for i in range(rows)))
    print_complete({"data": Artifact(path=out, name=config.name, metadata={"rows": rows})})
