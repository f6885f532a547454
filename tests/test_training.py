"""The training utilities every trainer shares (rlhf_lib/training.py): the schedule, the finite checks, the local
engine's step and the one-process `Parallel`."""
from __future__ import annotations

import math

import pytest
import torch

from rlhf_lib.training import (
    LOCAL,
    LocalEngine,
    NonFinite,
    Parallel,
    TrainingError,
    check_finite,
    ensure_finite,
    warmup_cosine_lr,
)


@pytest.mark.parametrize("step, total, warmup", [(0, 100, 10), (4, 100, 10), (9, 100, 10), (10, 100, 10),
                                                 (57, 100, 10), (99, 100, 10), (0, 1, 0), (3, 7, 0)])
def test_schedule_matches_its_formula(step, total, warmup):
    lr = 3e-3
    ramp = min(1.0, (step + 1) / max(1, warmup))
    cosine = 0.1 + 0.45 * (1 + math.cos(math.pi * step / total))          # 10 % floor, half a cosine over the run
    assert warmup_cosine_lr(lr, warmup, step, total) == pytest.approx(lr * ramp * cosine, rel=1e-12)
    if step < warmup:
        after = lr * (step + 1) / warmup
    else:
        after = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
    assert warmup_cosine_lr(lr, warmup, step, total, decay_after_warmup=True) == pytest.approx(after, rel=1e-12)


def test_schedule_ends_at_a_tenth_and_peaks_after_warmup():
    lrs = [warmup_cosine_lr(1.0, 5, t, 50, decay_after_warmup=True) for t in range(51)]
    assert lrs[4] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)


def test_finite_checks_name_what_failed():
    check_finite("phase", a=torch.ones(3))
    with pytest.raises(NonFinite) as e:
        check_finite("2. score", ok=torch.zeros(2), scores=torch.tensor([1.0, float("nan")]))
    assert e.value.phase == "2. score" and e.value.names == ["scores"]
    ensure_finite(0.5, "SFT", 3, "lower lr")
    with pytest.raises(TrainingError, match=r"^SFT: loss is inf at step 3; lower lr \(now 1\). Nothing was saved.$"):
        ensure_finite(float("inf"), "SFT", 3, "lower lr (now 1)")


def test_local_engine_steps_like_the_hand_written_loop():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4)
    opt_a, opt_b = torch.optim.AdamW(a.parameters(), lr=0.1), torch.optim.AdamW(b.parameters(), lr=0.1)
    engine = LocalEngine([a], opt_a, clip=[(list(a.parameters()), 0.01), ([], 1.0)])   # an empty group is skipped
    engine.step(engine(lambda m, x: (m(x) ** 2).mean(), x), lr=0.05)
    for g in opt_b.param_groups:
        g["lr"] = 0.05
    opt_b.zero_grad()
    (b(x) ** 2).mean().backward()
    torch.nn.utils.clip_grad_norm_(b.parameters(), 0.01)
    opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_one_process_parallel_is_the_identity():
    rows = list(range(7))
    assert LOCAL.shard(rows) == rows and LOCAL.micro(32) == 32 and LOCAL.reduce([1, 2.5]) == [1.0, 2.5]
    assert LOCAL.once(lambda: 42) == 42 and LOCAL.gather("x") == ["x"] and LOCAL.info is None
    two = Parallel(rank=1, world=2, accum=2)
    assert two.shard(rows) == [1, 3, 5] and two.micro(32) == 8
