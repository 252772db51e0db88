"""Step 2 of the README's two-script pipe: read the artifact step 1 printed on stdin, "train", commit a model.

Its lineage names the exact version of the data it read: `nemotron-art lineage counted-model`.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nemotron.kit import Artifact, ModelArtifact, cli, print_complete


@dataclass
class Config:
    steps: int = 10
    lr: float = 0.5
    output_dir: str = "outputs/train"
    name: str = "counted-model"


if __name__ == "__main__":
    config = cli(Config, config_file=Path(__file__).with_name("train.toml"))
    data = Artifact.load()  # the JSON line curate.py printed, read from stdin: pinned and recorded as an input
    lines = (Path(data.path) / "lines.txt").read_text().splitlines()
    # a one-parameter "model" y = w * x, fitted to "i + i = 2i" by (normalized) gradient descent
    pairs = [(int(line.split()[0]), int(line.split()[-1])) for line in lines]
    weight, loss = 0.0, 0.0
    for _ in range(config.steps):
        weight -= config.lr * sum((weight * x - y) * x for x, y in pairs) / sum(x * x for x, _ in pairs)
        loss = sum((weight * x - y) ** 2 for x, y in pairs) / len(pairs)
    out = Path(config.output_dir, time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}").resolve()
    out.mkdir(parents=True)
    (out / "weights.json").write_text(json.dumps({"w": weight}) + "\n")
    model = ModelArtifact(path=out, name=config.name, step=config.steps, final_loss=loss)
    print_complete(model=model)
