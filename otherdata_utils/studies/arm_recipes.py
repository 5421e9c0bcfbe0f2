"""Training recipes per (k, arm): the learning rate, epochs and such that one arm of a few-shot study trains with at
one k, in place of the params file's, where a rule chose them without the study's target (the recipe study).

Hands the few-shot study `ArmRecipe` (its `study.few_shot.recipes` entries), `with_recipes` (each cell with its
recipe as its own config), and the design's words for them (`recipe_tuning`, `recipes_text`); the recipe study
`RECIPE_SETTINGS`, the settings a grid may vary.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import Config
from .engine import Cell

# the settings a recipe may set per (k, arm): how a model trains, never which rows it sees
RECIPE_SETTINGS = ("learning_rate", "num_train_epochs", "warmup_ratio", "weight_decay", "per_device_train_batch_size")


class ArmRecipe(BaseModel):
    """One (k, arm)'s training recipe: settings from `RECIPE_SETTINGS` that replace the file's for its cells."""

    model_config = ConfigDict(extra="forbid")

    k: Optional[int] = Field(..., ge=1)  # null = all target rows
    arm: str
    settings: dict[str, float] = Field(..., min_length=1)

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(RECIPE_SETTINGS))
        if unknown:
            raise ValueError(f"a recipe sets only {list(RECIPE_SETTINGS)}; {unknown} is not one of them")
        return value


def recipe_tuning(recipes: Sequence[ArmRecipe], source: Optional[str]) -> Optional[dict[str, str]]:
    """The settings the recipes set, each with where it was chosen (the design's "tuned per arm"); None without."""
    names = sorted({name for recipe in recipes for name in recipe.settings})
    return {name: f"per (k, arm) from {source}" for name in names} or None


def recipes_text(recipes: Sequence[ArmRecipe]) -> str:
    """Each (k, arm)'s recipe in one line, for the design paragraph."""
    return "; ".join(f"k {'all' if recipe.k is None else recipe.k} {recipe.arm}: "
                     + ", ".join(f"{name} {value:g}" for name, value in recipe.settings.items())
                     for recipe in recipes)


def with_recipes(config: Config, cells: list[Cell], recipes: Sequence[ArmRecipe]) -> list[Cell]:
    """Each cell with its (k, arm)'s recipe as its own config; the cells untouched where there are no recipes (their
    keys as before). Once any is given every (k, arm) needs one: a referee's "the same rule for every arm"."""
    chosen = {("all" if recipe.k is None else str(recipe.k), recipe.arm): recipe.settings for recipe in recipes}
    if not chosen:
        return cells
    missing = sorted({(cell.facts["k_label"], cell.arm) for cell in cells} - set(chosen))
    if missing:
        raise ValueError(f"study.few_shot.recipes has no recipe for (k, arm) {missing}; every fine-tuned arm at every "
                         "k needs one, chosen by the same rule (the recipe study, notebook 17)")
    return [replace(cell, config=config.replace(**chosen[(cell.facts["k_label"], cell.arm)])) for cell in cells]
