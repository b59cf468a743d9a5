"""``finetune.network.FineTuneNet``: channel adaptation and the video options, checked exactly.

No training here: what is checked are identities that hold by construction (adapted
pretrained kernels reproduce the RGB network, images are unaffected by the temporal
options, averaging cannot tell a clip from its reverse). Learning the direction of
motion is checked end to end in ``test_config_runs.py``.
"""

from __future__ import annotations

import pytest
import torch

from finetune.backbones import create_backbone, get_first_conv
from finetune.network import FineTuneNet, MotionStem, TemporalShift

pytestmark = pytest.mark.usefixtures("torch_threads_1")
LITE0 = "tf_efficientnet_lite0"


def _images(channels: int, n: int = 2, side: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, side, side), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def rgb_net() -> FineTuneNet:
    return FineTuneNet(create_backbone(LITE0, num_classes=0), 3, 5).eval()


def test_other_channel_counts_go_through_the_adapted_pretrained_stem(rgb_net: FineTuneNet):
    net = FineTuneNet(create_backbone(LITE0, num_classes=0), 6, 5).eval()
    assert net.adapter.conv is None and net.channel_adapter == "stem"
    w3, w6 = get_first_conv(rgb_net.backbone).weight, get_first_conv(net.backbone).weight
    assert w6.shape[1] == 6
    for k in range(6):  # channel k: the RGB kernel of channel k mod 3, scaled by 3/6 (timm's rule)
        torch.testing.assert_close(w6[:, k], w3[:, k % 3] * 0.5)
    # deterministic: the same weights every time, and what create_backbone(in_chans=6) loads
    again = FineTuneNet(create_backbone(LITE0, num_classes=0), 6, 5)
    torch.testing.assert_close(get_first_conv(again.backbone).weight, w6)
    torch.testing.assert_close(get_first_conv(create_backbone(LITE0, num_classes=0, in_chans=6)).weight, w6)
    # two copies of an RGB image embed exactly as the image does in the RGB network: the
    # embeddings of such data are the pretrained network's, not random projections
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(net.embed(torch.cat([x, x], 1)), rgb_net.embed(x), atol=1e-4, rtol=1e-4)


def test_one_channel_is_copied_to_three(rgb_net: FineTuneNet):
    net = FineTuneNet(create_backbone(LITE0, num_classes=0), 1, 5).eval()
    assert net.adapter.mode == "copy" and get_first_conv(net.backbone).in_channels == 3
    x = _images(1)
    with torch.no_grad():
        torch.testing.assert_close(net.embed(x), rgb_net.embed(x.expand(-1, 3, -1, -1)))


def test_the_learned_adapter_remains_a_choice():
    net = FineTuneNet(create_backbone(LITE0, num_classes=0), 4, 5, channel_adapter="conv3x3")
    conv = net.adapter.conv
    assert isinstance(conv, torch.nn.Conv2d) and (conv.in_channels, conv.out_channels) == (4, 3)
    assert get_first_conv(net.backbone).in_channels == 3
    with pytest.raises(ValueError, match="channel_adapter"):
        FineTuneNet(create_backbone(LITE0, num_classes=0), 4, 5, channel_adapter="magic")


def _scratch(temporal: str, seed: int = 0) -> FineTuneNet:
    torch.manual_seed(seed)
    return FineTuneNet(create_backbone("scratch_cnn", pretrained=False, num_classes=0), 3, 4,
                       temporal=temporal).eval()


def test_images_are_unaffected_by_the_temporal_options():
    x = _images(3, side=16)[:, None]  # [N, T=1, C, H, W]
    with torch.no_grad():
        outputs = {mode: _scratch(mode)(x) for mode in ("average", "difference", "tsm")}
    torch.testing.assert_close(outputs["difference"], outputs["average"])
    torch.testing.assert_close(outputs["tsm"], outputs["average"])


def test_averaging_cannot_tell_a_clip_from_its_reverse_the_motion_options_can():
    clip = torch.stack([_images(3, n=1, side=16, seed=s)[0] for s in range(4)])[None]  # [1, T=4, C, H, W]
    backwards = clip.flip(1)
    with torch.no_grad():
        average, tsm, difference = _scratch("average"), _scratch("tsm"), _scratch("difference")
        torch.testing.assert_close(average(clip), average(backwards))
        assert not torch.allclose(tsm(clip), tsm(backwards), atol=1e-5)
        stem = get_first_conv(difference.backbone)
        assert isinstance(stem, MotionStem)
        # zero-initialised: it starts as averaging does, then learns motion filters
        torch.testing.assert_close(difference(clip), average(clip))
        torch.nn.init.normal_(stem.motion.weight, std=0.1)
        assert not torch.allclose(difference(clip), difference(backwards), atol=1e-5)


def test_temporal_shift_moves_one_eighth_of_the_channels_each_way():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(6, 8, 1, 1)  # 2 clips x 3 frames, 8 channels
    before = x.clone()
    y = TemporalShift.shift(x, frames=3).view(2, 3, 8)
    v = x.view(2, 3, 8)
    torch.testing.assert_close(y[:, :2, 0], v[:, 1:, 0])  # channel 0 from the next frame
    assert torch.all(y[:, 2, 0] == 0)
    torch.testing.assert_close(y[:, 1:, 1], v[:, :2, 1])  # channel 1 from the previous frame
    assert torch.all(y[:, 0, 1] == 0)
    torch.testing.assert_close(y[:, :, 2:], v[:, :, 2:])  # the rest stays
    torch.testing.assert_close(x, before)  # the input is not modified
    torch.testing.assert_close(TemporalShift.shift(x, frames=1), x)
