"""Ready-made generators and discriminators (each a Sequential of tinygan layers)."""
from .age_classifier import age_classifier
from .conditional import (
    ConditionalDiscriminator,
    ConditionalGenerator,
    build_conditional_gan,
    conditional_discriminator,
    conditional_generator,
)
from .dcgan import (
    dcgan64_discriminator,
    dcgan64_generator,
    dcgan128_discriminator,
    dcgan128_generator,
    dcgan_discriminator,
    dcgan_generator,
)
from .dense_gan import dense_discriminator, dense_generator

__all__ = ["dcgan_generator", "dcgan_discriminator", "dcgan64_generator", "dcgan64_discriminator",
           "dcgan128_generator", "dcgan128_discriminator", "dense_generator", "dense_discriminator",
           "build_gan", "ConditionalGenerator", "ConditionalDiscriminator", "conditional_generator",
           "conditional_discriminator", "build_conditional_gan", "age_classifier"]

DCGAN_LAYOUTS = {64: "paper", 128: "keras"}      # the layout examples/celeba_dcgan.py trains at each size


def build_gan(model: str = "dcgan", image_size: int = 64, latent_dim: int = 100, channels: int = 3,
              seed: int = 0, base_filters: int = 64):
    """(generator, discriminator) for ``model`` 'dcgan' (64: the paper's, 128: the Keras face GANs')
    or 'mlp' (the dense GAN); G is seeded with ``seed``, D with ``seed + 1``."""
    if model == "dcgan":
        if image_size not in DCGAN_LAYOUTS:
            raise ValueError(f"the DCGAN comes in image sizes {sorted(DCGAN_LAYOUTS)}, not {image_size}")
        layout = DCGAN_LAYOUTS[image_size]
        return (dcgan_generator(latent_dim, image_size, base_filters, channels, layout, seed=seed),
                dcgan_discriminator(image_size, base_filters, channels, layout, seed=seed + 1))
    if model == "mlp":
        shape = (channels, image_size, image_size)
        return dense_generator(latent_dim, shape, seed=seed), dense_discriminator(shape, seed=seed + 1)
    raise ValueError(f"unknown model {model!r}; expected 'dcgan' or 'mlp'")
