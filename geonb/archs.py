"""The architectures users pick with ``arch``: a task, networks by role, a method and its settings.

Adding one is a line here (its networks in ``geonb/models``, its method in ``geonb/methods``).
"""
from __future__ import annotations

from .registry import ARCHS, Arch

for arch in (
    Arch("unet", "inpaint", "masked", {"generator": "unet"},
         "seed U-Net autoencoder (20/15/10 maps, skip connections), masked semantic loss"),
    Arch("ctxgan", "inpaint", "paired_gan", {"generator": "unet", "discriminator": "pair_discriminator"},
         "context-encoder GAN: the seed U-Net trained against a pair discriminator",
         method_args={"content": "masked", "adversarial": "pair_bce", "composite": True}),
    Arch("srcnn", "downscale", "regression", {"generator": "srcnn"},
         "SRCNN 9-1-5 (64/32 filters) on the bicubic-upsampled grid, MSE, Adam"),
    Arch("rsrcnn", "downscale", "stagewise", {"generator": "rsrcnn"},
         "recurrent SRCNN: ×4/×8/×16 as chained ×2 stages, each trained on its own label"),
    Arch("srgan", "downscale", "paired_gan", {"generator": "esrgan", "discriminator": "esrgan_discriminator"},
         "DeepBedMap ESRGAN: conditioned RRDB generator + relativistic-average discriminator",
         lr=1.7e-4, method_args={"content": "deepbedmap", "adversarial": "ragan"}),
    Arch("dincae", "clouds", "gaussian_nll", {"generator": "dincae"},
         "DINCAE: U-Net on precision-weighted days t−1..t+1 + coordinates; mean + log-variance, "
         "Gaussian NLL, self-supervised on real clouds"),
    Arch("acgan", "generate", "acgan", {"generator": "acgan_generator", "discriminator": "acgan_discriminator"},
         "ACGAN: noise + class label → 28×28 digit; discriminator with real/fake and 10-class heads",
         lr=2e-4, method_args={"betas": [0.5, 0.999]}),
    Arch("pix2pix", "translate", "paired_gan", {"generator": "pix2pix_unet", "discriminator": "patchgan"},
         "pix2pix: U-Net generator + 70×70 PatchGAN on (photo, map) pairs, λ·L1 + vanilla GAN (λ = 100)",
         lr=2e-4, method_args={"content": "l1", "adversarial": "patch_bce", "conditional": True,
                               "betas": [0.5, 0.999]}),
    Arch("pix2pix_l1", "translate", "regression", {"generator": "pix2pix_unet"},
         "the pix2pix U-Net trained with L1 only (no discriminator): pix2pix's baseline",
         lr=2e-4, method_args={"loss": "l1", "betas": [0.5, 0.999]}),
    Arch("segnet", "segment", "classification", {"generator": "segnet"},
         "SegNet: VGG-style encoder with BatchNorm, decoder upsampling by max-unpooling at the stored pooling "
         "indices; cross-entropy, unlabeled pixels ignored"),
    Arch("fcn", "segment", "classification", {"generator": "fcn"},
         "FCN-8s: VGG-style encoder, class scores of the last three pooling levels fused coarse to fine"),
    Arch("unet_seg", "segment", "classification", {"generator": "unet_seg"},
         "U-Net for segmentation: transposed-conv upsampling, encoder maps concatenated, 1×1 class scores"),
    Arch("deeplabv3plus", "segment", "classification", {"generator": "deeplabv3plus"},
         "DeepLabv3+: residual encoder with an atrous block, ASPP (1×1, atrous 3×3, image pooling), decoder "
         "joining stride-4 features; bilinear upsampling"),
):
    ARCHS.add(arch.name, arch)
