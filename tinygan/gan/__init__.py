"""GAN training loops built from the layers' forward and backward passes."""
from .conditional import ConditionalStackedGANTrainer
from .ema import GeneratorEMA
from .stacked import StackedGANTrainer, StepStats

__all__ = ["StackedGANTrainer", "StepStats", "GeneratorEMA", "ConditionalStackedGANTrainer"]
