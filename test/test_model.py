import copy

import pytest
import torch
import torch.nn.functional as F

from fcn_perception.model.backbones import EfficientNetLite, build_backbone, imagenet_weights_path
from fcn_perception.model.fcn import FCN, ModelConfig, Upsample, build_model, count_flops, load_model, save_checkpoint
from fcn_perception.studies.shift_stitch import coarse_scores, dilated, shift_and_stitch, use_circular_padding


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s", "fcn4s"])
@pytest.mark.parametrize("size", [(360, 480), (97, 131), (33, 65), (1, 1)])
def test_any_input_size_gives_aligned_full_resolution_output(variant, size):
    model = build_model(ModelConfig(variant=variant)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 11, *size)


def test_vgg16_variant_runs_on_odd_sizes():
    model = build_model(ModelConfig(backbone="vgg16", variant="fcn8s")).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 70)).shape == (1, 11, 45, 70)
    model = build_model(ModelConfig(backbone="vgg16", variant="fcn4s")).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 70)).shape == (1, 11, 45, 70)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_upsampling_is_initialised_to_exact_bilinear_interpolation(factor):
    up = Upsample(3, factor)
    x = torch.randn(1, 3, 5, 7)
    n_h, n_w = factor * 4 + 1, factor * 6 + 1  # centre-aligned grid: output p = input p / factor
    got = up(x, (n_h, n_w))
    ref = F.interpolate(x, size=(n_h, n_w), mode="bilinear", align_corners=True)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    dw = Upsample(3, factor, depthwise=True)
    torch.testing.assert_close(dw(x, (n_h, n_w)), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_imagenet_weights_load_strictly(name):
    if imagenet_weights_path(name) is None:
        pytest.fail(f"{name} weights package missing from the environment (requirements lock)")
    net = build_backbone(name, pretrained=True)
    assert isinstance(net, EfficientNetLite)
    with torch.no_grad():
        feats = net.eval()(torch.randn(1, 3, 64, 64))
    assert {s: f.shape[1] for s, f in feats.items()} == net.channels


def test_flop_count_matches_hand_count():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(torch.nn.Sequential(conv), 10, 20) == 2 * 10 * 20 * 8 * 3 * 9


def test_checkpoint_round_trip_and_refusal_of_pickled_models(tmp_path):
    model = build_model(ModelConfig(variant="fcn16s")).eval()
    save_checkpoint(tmp_path / "m.pt", model)
    again = load_model(tmp_path / "m.pt")
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    torch.save(model, tmp_path / "pickled.pt")  # a whole pickled module: must not be unpickled
    with pytest.raises(ValueError, match="not a loadable"):
        load_model(tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize("factor", [2, 4])
def test_shift_and_stitch_equals_filter_rarefaction(factor):
    """The paper's equivalence, exact once border effects are removed with circular padding."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="fcn32s"), pretrained=True).eval()
    torch.nn.init.normal_(model.score["32"].weight, std=0.05)
    x = torch.randn(1, 3, 64, 96)
    stitched = shift_and_stitch(use_circular_padding(copy.deepcopy(model)), x, factor, circular=True)
    with torch.no_grad():
        one_pass = coarse_scores(use_circular_padding(dilated(model, factor)), x)
    assert stitched.shape == one_pass.shape == (1, 11, 64 * factor // 32, 96 * factor // 32)
    torch.testing.assert_close(stitched, one_pass, atol=1e-4, rtol=1e-4)
    # factor 1 is the plain coarse net
    with torch.no_grad():
        torch.testing.assert_close(shift_and_stitch(model, x, 1), coarse_scores(model, x))


def test_dilated_copy_leaves_the_original_untouched():
    model = build_model(ModelConfig(variant="fcn8s")).eval()
    before = [m.stride for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    dilated(model, 4)
    assert before == [m.stride for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert isinstance(model, FCN)


def test_a_finer_variant_grows_from_a_coarser_checkpoint(tmp_path):
    """FCN-8s -> FCN-4s: trunk and the shared skips carry over, the stride-4 scores start at zero,
    so the grown net's logits before its final upsampling equal the old net's, upsampled."""
    from fcn_perception.model.fcn import init_from_checkpoint

    torch.manual_seed(0)
    old = build_model(ModelConfig(variant="fcn8s")).eval()
    for p in old.score.parameters():  # trained-looking skips, not the zero init
        torch.nn.init.normal_(p, std=0.1)
    save_checkpoint(tmp_path / "8s.pt", old)
    new = build_model(ModelConfig(variant="fcn4s"))
    assert "fcn8s -> fcn4s" in init_from_checkpoint(new, tmp_path / "8s.pt")
    new.eval()
    assert torch.equal(new.backbone.head.weight, old.backbone.head.weight)
    assert torch.equal(new.score["8"].weight, old.score["8"].weight) and torch.equal(new.up2[1].deconv.weight, old.up2[1].deconv.weight)
    assert not new.score["4"].weight.any() and not new.score["4"].bias.any()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        a, b = old(x).argmax(1), new(x).argmax(1)
    assert (a == b).float().mean() > 0.8  # the same scores, through another final interpolation
    with pytest.raises(ValueError, match="cannot start"):
        init_from_checkpoint(build_model(ModelConfig(variant="fcn16s")), tmp_path / "8s.pt")  # coarser from finer: refused


def test_hidden_widths_that_do_not_fit_the_trunk_are_refused():
    widths = [32, *[64] * 15]
    assert [b.dw.out_channels for b in build_model(ModelConfig(hidden=widths)).backbone.blocks] == widths
    with pytest.raises(ValueError, match="16 blocks, got 3"):
        build_model(ModelConfig(hidden=[32, 64, 64]))
    with pytest.raises(ValueError, match="without expansion is 32 wide"):
        build_model(ModelConfig(hidden=[16, *[64] * 15]))
    with pytest.raises(ValueError, match="not vgg16"):
        build_model(ModelConfig(backbone="vgg16", hidden=widths))
