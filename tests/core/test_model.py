import pytest
import torch

from edgefuse.model import CONFIGS, FusionProxy, count_macs, count_params, create_model
from edgefuse.spec import IOSpec


def test_default_size_meets_budget():
    m = create_model("s")
    assert count_params(m) <= 300_000
    assert count_macs(m, 480, 640) <= 2.0e9


def test_sizes_are_ordered():
    params = [count_params(create_model(k)) for k in ("n", "s", "m")]
    macs = [count_macs(create_model(k), 96, 128) for k in ("n", "s", "m")]
    assert params == sorted(params) and len(set(params)) == 3
    assert macs == sorted(macs)


@pytest.mark.parametrize("size", list(CONFIGS))
@pytest.mark.parametrize("hw", [(64, 96), (48, 80)])
def test_shapes_and_range(size, hw):
    torch.manual_seed(0)
    m = create_model(size).eval()
    v, t = torch.rand(2, 3, *hw), torch.rand(2, 1, *hw)
    with torch.no_grad():
        out = m(v, t)
    assert out.shape == (2, 3, *hw)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_initialisation_is_average_of_luminances_with_visible_chroma():
    # untrained head: Y_f = 0.5 Y_v + 0.5 T, chroma of the visible frame kept
    m = create_model("n").eval()
    v = torch.full((1, 3, 32, 32), 0.4)
    v[:, 0] = 0.5  # some colour
    t = torch.full((1, 1, 32, 32), 0.8)
    with torch.no_grad():
        out = m(v, t)
    y = 0.299 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]
    expected = v + (0.5 * y + 0.5 * t[:, 0] - y).unsqueeze(1)
    torch.testing.assert_close(out, expected.clamp(0, 1), atol=1e-5, rtol=0)
    # chroma (R - Y, B - Y) equals the visible frame's
    yo = 0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]
    torch.testing.assert_close(out[:, 0] - yo, v[:, 0] - y, atol=1e-5, rtol=0)


def test_gradients_flow_to_every_parameter():
    torch.manual_seed(0)
    m = create_model("n")
    out = m(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32))
    (out - 0.3).pow(2).mean().backward()
    assert m.head.weight.grad is not None and m.head.weight.grad.abs().sum() > 0


def test_unknown_size():
    with pytest.raises(ValueError, match="unknown model size"):
        create_model("xl")


def test_only_portable_operators():
    allowed = (torch.nn.Conv2d, torch.nn.ReLU, torch.nn.Sequential, torch.nn.ModuleList, FusionProxy)
    names = {type(mod).__name__ for mod in create_model("s").modules() if not isinstance(mod, allowed)}
    assert names == {"Block"}


def test_iospec_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiples of 16"):
        IOSpec(height=470, width=640)
    assert IOSpec(480, 640).inputs["thermal"] == (1, 1, 480, 640)


def test_selection_form_starts_as_the_mean_and_learns_a_pixel_exact_choice(tmp_path):
    """The opt-in form: at init the sources' average; its gain/offset maps can reach a pixel-wise max."""
    from edgefuse.checkpoint import load_model, save_checkpoint

    m = create_model("n", select=True)
    assert m.config.select and m.head.out_channels == 5
    g = torch.Generator().manual_seed(0)
    v, t = (
        torch.rand(1, 3, 32, 48, generator=g) * 0.5 + 0.25,
        torch.rand(1, 1, 32, 48, generator=g) * 0.5 + 0.25,
    )
    y = (v * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    with torch.no_grad():
        assert torch.allclose(m(v, t), v + 0.5 * (t - y), atol=1e-6)
        m.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 200.0, 0.0]))  # gain k = 200: a hard choice
        out = m(v, t)
    expect = v + torch.clamp(t - y, min=0)  # Y_f = max(Y_v, T) per pixel, with the visible chroma
    assert float((out - expect.clamp(0, 1)).abs().max()) < 2e-2
    # the config travels with the checkpoint, and the first form still loads
    path = save_checkpoint(m, tmp_path / "sel.safetensors")
    assert load_model(path).info.config.select
    assert not load_model("fusionproxy-s").info.config.select
