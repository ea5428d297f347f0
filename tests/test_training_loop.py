"""The shared training loop: it learns, writes metrics and a loss curve, and resumes."""

import json

import torch
from torch import nn

from train.loop import TrainConfig, train


def regression_batches(seed: int = 0, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def batches(epoch: int):
        for start in range(0, n, 16):
            yield x[start : start + 16], y[start : start + 16]

    return batches


def run(tmp_path, model, steps: int, resume: bool = False):
    cfg = TrainConfig(lr=0.3, batch_size=16, warmup_steps=1, max_steps=steps, save_every=5)

    def loss_fn(batch):
        x, y = batch
        return {"loss": nn.functional.mse_loss(model(x).squeeze(-1), y)}

    return train(model, regression_batches(), loss_fn, cfg, tmp_path, 64, "toy", resume=resume)


def test_loop_reduces_the_loss_and_writes_metrics_and_a_curve(tmp_path):
    torch.manual_seed(0)
    result = run(tmp_path, nn.Linear(4, 1), steps=40)
    assert result.losses[-1] < 0.2 * result.losses[0]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 40 and len(metrics["losses"]) == 40
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_a_finished_run_resumes_from_its_final_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    run(tmp_path, model, steps=12)  # the last periodic save is at step 10
    final = model.weight.detach().clone()
    torch.manual_seed(1)
    fresh = nn.Linear(4, 1)
    result = run(tmp_path, fresh, steps=12, resume=True)
    assert result.steps == 12
    assert torch.allclose(fresh.weight, final)


def test_an_interrupted_run_continues_where_it_stopped(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    run(tmp_path, model, steps=8)
    result = run(tmp_path, model, steps=16, resume=True)
    assert result.steps == 16 and len(result.losses) == 16
