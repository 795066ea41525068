"""A toy training run for ferry's sweep examples.

It reads its parameters with ferry.load_parameters(), "trains" for a few
steps and logs the loss with ferry.log_metric(): `ferry sweep show` and
Sweep.best() read the latest value of each metric. Run it locally too
(`python3 train.py`): the helpers then write to ./ferry-local/.
"""

import math

import numpy as np

import ferry

params = ferry.load_parameters({"lr": 0.01, "layers": 2, "steps": 5})
lr, layers, steps = float(params["lr"]), int(params["layers"]), int(params["steps"])
ferry.log_param("optimizer", "sgd")
ferry.set_tag("example", "sweep_demo")

# The final loss is lowest at lr=0.01 and 3 layers: (log10(lr) + 2)^2 + 0.1 (layers - 3)^2 + 0.05.
final = (math.log10(lr) + 2) ** 2 + 0.1 * (layers - 3) ** 2 + 0.05
for step in range(steps):
    loss = np.float64(final * (1 + 2.0 ** -step) if step < steps - 1 else final)
    ferry.log_metric("loss", loss, step=step)
ferry.log_metric("val/accuracy (%)", np.float32(100.0 / (1.0 + final)))
print(f"lr={lr} layers={layers}: final loss {final:.4f}")
