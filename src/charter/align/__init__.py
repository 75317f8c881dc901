"""The main job as one command: a recipe runs every stage from constitution to sealed model."""

from charter.align.recipe import Recipe, bundled_recipes, load_recipe
from charter.align.runner import AlignConfig, AlignRun

__all__ = ["AlignConfig", "AlignRun", "Recipe", "bundled_recipes", "load_recipe"]
