import torch

from safevlm.model.modules import SafetyHead, SafetyProjector, SafetyTokens


def test_safety_projector_pools_any_grid_to_grid_squared_tokens():
    proj = SafetyProjector(in_channels=12, hidden_size=16, width=8, grid=3)
    for h in (7, 24):
        out = proj(torch.randn(2, 12, h, h))
        assert out.shape == (2, 9, 16)


def test_safety_tokens_expand_to_batch_without_copying_parameters():
    tokens = SafetyTokens(5, 16)
    out = tokens(3)
    assert out.shape == (3, 5, 16) and torch.equal(out[0], out[2])
    assert sum(p.numel() for p in tokens.parameters()) == 5 * 16


def test_safety_head_outputs_one_logit_per_type_and_level():
    head = SafetyHead(16, 4, num_types=7, num_levels=4).eval()
    t, lv = head(torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, 9, 16))
    assert t.shape == (2, 7) and lv.shape == (2, 4)


def test_padding_positions_do_not_change_the_verdict():
    torch.manual_seed(0)
    head = SafetyHead(16, 4, 7, 4).eval()
    queries, memory = torch.randn(1, 6, 16), torch.randn(1, 9, 16)
    mask = torch.tensor([[True, True, True, False, False, False]])
    a = head(queries, mask, memory)
    noisy = queries.clone()
    noisy[:, 3:] = torch.randn(1, 3, 16) * 100
    b = head(noisy, mask, memory)
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)


def test_every_valid_query_position_reaches_the_verdict():
    """The authors' head read position 0 only; ours must see the rest of the prompt."""
    torch.manual_seed(0)
    head = SafetyHead(16, 4, 7, 4).eval()
    queries, memory = torch.randn(1, 4, 16), torch.randn(1, 9, 16)
    mask = torch.ones(1, 4, dtype=torch.bool)
    changed = queries.clone()
    changed[:, -1] = torch.randn(16) * 3
    assert not torch.allclose(head(queries, mask, memory)[0], head(changed, mask, memory)[0])


def test_head_gradients_reach_tokens_and_projector():
    proj, tokens, head = SafetyProjector(12, 16, 8, 2), SafetyTokens(3, 16), SafetyHead(16, 4, 7, 4)
    memory = torch.cat([tokens(2), proj(torch.randn(2, 12, 7, 7))], dim=1)
    t, lv = head(torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool), memory)
    (t.sum() + lv.sum()).backward()
    for module in (proj, tokens, head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()
                   if p.requires_grad and p.ndim > 1)
