"""Ready-made generators and discriminators (each a Sequential of tinygan layers)."""
from .age_classifier import age_classifier
from .conditional import (ConditionalDiscriminator, ConditionalGenerator, build_conditional_gan,
                          conditional_discriminator, conditional_generator)
from .dcgan import dcgan64_discriminator, dcgan64_generator
from .dcgan128 import dcgan128_discriminator, dcgan128_generator
from .dense_gan import dense_discriminator, dense_generator

__all__ = ["dcgan64_generator", "dcgan64_discriminator", "dcgan128_generator",
           "dcgan128_discriminator", "dense_generator", "dense_discriminator", "build_gan",
           "ConditionalGenerator", "ConditionalDiscriminator", "conditional_generator",
           "conditional_discriminator", "build_conditional_gan", "age_classifier"]


def build_gan(model: str = "dcgan", image_size: int = 64, latent_dim: int = 100, channels: int = 3,
              seed: int = 0):
    """(generator, discriminator) for ``model`` in {'dcgan', 'mlp'} at ``image_size`` 64 or 128."""
    if model == "dcgan":
        if image_size == 64:
            return (dcgan64_generator(latent_dim, channels=channels, seed=seed),
                    dcgan64_discriminator(channels=channels, seed=seed + 1))
        if image_size == 128:
            return (dcgan128_generator(latent_dim, channels=channels, seed=seed),
                    dcgan128_discriminator(channels=channels, seed=seed + 1))
        raise ValueError(f"the DCGAN comes in image sizes 64 and 128, not {image_size}")
    if model == "mlp":
        shape = (channels, image_size, image_size)
        return dense_generator(latent_dim, shape, seed=seed), dense_discriminator(shape, seed=seed + 1)
    raise ValueError(f"unknown model {model!r}; expected 'dcgan' or 'mlp'")
