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


def _text(value):  # "data/gen" and Path("data/gen") are the same default
    return None if value is None else str(value)


def _defaults(parser) -> dict:
    return {a.dest: a.default for a in parser._actions if a.dest != "help"}


def test_each_stage_flag_is_a_config_field_with_the_same_default():
    """`main(argv)` builds the config `run` takes; a flag whose default drifted from the
    config's would train the recipe and the command line differently."""
    from dataclasses import MISSING, fields

    from train import stage1_safety, stage2_finetune

    for parser, config in ((stage1_safety.parser(), stage1_safety.Stage1Config),
                           (stage2_finetune.parser(), stage2_finetune.Stage2Config)):
        flags = _defaults(parser)
        by_name = {f.name: f for f in fields(config)}
        assert set(flags) == set(by_name), config.__name__
        for name, default in flags.items():
            field_default = by_name[name].default
            if field_default is MISSING:  # required: --out
                assert parser._option_string_actions[f"--{name}"].required
            else:
                assert _text(field_default) == _text(default), name
        parsed = config.from_args(parser.parse_args(["--out", "somewhere", "--init", "ckpt"]))
        assert parsed.out.name == "somewhere" and parsed.init.name == "ckpt"


def test_stage_2_without_a_stage_1_checkpoint_is_one_clear_error(tmp_path):
    import pytest

    from train import stage2_finetune
    from train.loop import StageError

    with pytest.raises(StageError, match="--init"):
        stage2_finetune.run(stage2_finetune.Stage2Config(out=tmp_path / "s2"))
    assert not (tmp_path / "s2").exists()
