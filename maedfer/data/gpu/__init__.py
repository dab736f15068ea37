"""The device data path: decoding and augmentation of whole batches on the training device.

Workers only read JPEG bytes and draw the augmentation parameters; decoding and augmentation run on
whole batches on the training device (the GPU; the same code on CPU tensors).

* :mod:`~maedfer.data.gpu.plan`: the per-clip parameter record (:class:`ClipPlan`), drawn from the sample's
  generator in exactly the order the CPU transforms draw.
* :mod:`~maedfer.data.gpu.rand_augment`: the 15 RandAugment ops as tensor maths matching Pillow's.
* :mod:`~maedfer.data.gpu.decode`: batched JPEG decoding (nvJPEG through ``torchvision.io.decode_jpeg``).
* :mod:`~maedfer.data.gpu.batch`: :class:`DeviceBatch` (the collated worker output) and
  :class:`BatchAugment` (bytes + plans -> the model's float batch (B, C, T, H, W) on the device).
"""
