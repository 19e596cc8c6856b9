"""GAN training loops built from the layers' forward and backward passes."""
from .ema import GeneratorEMA
from .stacked import StackedGANTrainer, StepStats

__all__ = ["StackedGANTrainer", "StepStats", "GeneratorEMA"]
