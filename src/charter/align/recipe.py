"""Recipe files for ``charter align``: one TOML file names every stage's settings.

Each table mirrors one stage's Config (and so its CLI flags); the runner fills in the plumbing
(output directories, the previous stage's model or data, the recipe's guard as critic and judge).
Relative paths are read relative to the recipe file, so a recipe travels with its prompt files.
Unknown keys are typos and fail with the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from charter.core.errors import InputError
from charter.core.tomlinput import load_toml_model

BUNDLED = Path(__file__).parent / "recipes"
STAGES = ("guard", "sl-cai", "sft", "preferences", "dpo", "eval", "seal")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuardStage(_Table):
    """Build the constitutional classifier (``charter guard synth`` + ``guard train``), or use one."""

    path: Optional[str] = None  # an existing guard directory: nothing is built
    generator: str = "embedded"
    per_category: int = Field(4, ge=1)
    max_answers: Optional[int] = Field(160, ge=1)
    max_new_tokens: int = Field(96, ge=1)
    labelled_limit: Optional[int] = Field(None, ge=0)  # at most this many bundled hand-labelled replies
    mix_harmful: list[str] = []
    mix_benign: list[str] = []
    stage1: Literal["finetuned", "frozen"] = "finetuned"
    epochs: int = Field(2, ge=1)


class SLCAIStage(_Table):
    """``charter cai critique-revise``; critic "guard" means the recipe's guard."""

    prompts: str
    column: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)
    helpful: Optional[str] = None
    helpful_column: Optional[str] = None
    critic: str = "guard"
    with_guard: bool = False  # an LM critic's final revisions checked by the recipe's guard (ensemble)
    candidates: int = Field(4, ge=1)
    revisions: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0)


class TrainStage(_Table):
    """``charter train sft`` (and the shared part of ``train dpo``)."""

    epochs: float = Field(2.0, gt=0)
    batch_size: int = Field(2, ge=1)
    max_length: int = Field(384, ge=16)
    learning_rate: Optional[float] = Field(None, gt=0)
    lora: bool = True
    routing: bool = True


class DPOStage(TrainStage):
    epochs: float = Field(1.0, gt=0)
    beta: float = Field(0.1, gt=0)
    labels: Literal["soft", "hard"] = "soft"


class PreferencesStage(_Table):
    """``charter cai preferences`` on the SFT model; judge "guard" means the recipe's guard."""

    prompts: str
    column: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)
    judge: str = "guard"
    with_guard: bool = False  # an LM judge pooled with the recipe's guard (ensemble)
    samples: int = Field(2, ge=2)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    revision_pairs: bool = False  # add the SL-CAI stage's revisions as pairs (--revisions)
    revision_p: float = Field(0.9, gt=0.5, le=1.0)


class EvalStage(_Table):
    """``charter eval run`` for each model and suite, then ``charter eval compare``."""

    models: list[Literal["base", "sft", "dpo"]] = ["base", "dpo"]
    suites: list[Literal["harmlessness", "over-refusal"]] = ["harmlessness", "over-refusal"]
    judge: Optional[str] = None  # harmlessness judge (default: the recipe's model)
    skip: int = Field(0, ge=0)
    limit: Optional[int] = Field(8, ge=1)
    max_new_tokens: int = Field(128, ge=1)


class SealStage(_Table):
    """``charter seal`` of the SFT and DPO models. Without a key, one is generated under OUT/keys
    (the passphrase comes from CHARTER_KEY_PASSPHRASE, as for ``charter keys generate``)."""

    key: Optional[str] = None


class Recipe(_Table):
    name: str
    description: str = ""
    constitution: str = "default"
    model: str = "embedded"
    seed: int = 0
    guard: Optional[GuardStage] = None
    sl_cai: SLCAIStage = Field(alias="sl-cai")
    sft: TrainStage = TrainStage()
    preferences: Optional[PreferencesStage] = None
    dpo: Optional[DPOStage] = None
    eval: Optional[EvalStage] = None
    seal: Optional[SealStage] = None

    def section(self, stage: str) -> _Table | None:
        """The table that configures a stage (None: the recipe skips it)."""
        return {
            "guard": self.guard,
            "sl-cai": self.sl_cai,
            "sft": self.sft,
            "preferences": self.preferences,
            "dpo": self.dpo,
            "eval": self.eval,
            "seal": self.seal,
        }[stage]

    def stages(self) -> list[str]:
        """The stages this recipe runs, in order."""
        return [s for s in STAGES if self.section(s) is not None]

    def uses_guard(self) -> bool:
        p = self.preferences
        return (
            self.sl_cai.critic == "guard"
            or self.sl_cai.with_guard
            or (p is not None and (p.judge == "guard" or p.with_guard))
        )


def bundled_recipes() -> list[str]:
    return sorted(p.stem for p in BUNDLED.glob("*.toml"))


def resolve_recipe_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise InputError("no such recipe file", source=str(p))
        return p
    if (BUNDLED / f"{name_or_path}.toml").is_file():
        return BUNDLED / f"{name_or_path}.toml"
    raise InputError(
        f"no such recipe file or bundled recipe (bundled: {', '.join(bundled_recipes())})", source=name_or_path
    )


def load_recipe(name_or_path: str) -> tuple[Recipe, Path]:
    """The validated recipe and the directory its relative paths are read from."""
    path = resolve_recipe_path(name_or_path)
    recipe = load_toml_model(path, Recipe, "recipe")
    base = path.parent.resolve()
    _check_paths(recipe, base, path)
    return recipe, base


def _check_paths(recipe: Recipe, base: Path, path: Path) -> None:
    """Every input file named by the recipe exists, checked before any work starts."""
    named = [("sl-cai.prompts", recipe.sl_cai.prompts), ("sl-cai.helpful", recipe.sl_cai.helpful)]
    if recipe.preferences:
        named.append(("preferences.prompts", recipe.preferences.prompts))
    if recipe.guard:
        named += [("guard.mix_harmful", p) for p in recipe.guard.mix_harmful]
        named += [("guard.mix_benign", p) for p in recipe.guard.mix_benign]
    for field_name, value in named:
        if value is not None and not (base / value).is_file():
            raise InputError(f"{field_name}: no such file {value!r}", source=str(path), line=_line_of(path, value))
    if recipe.guard and recipe.guard.path and not (base / recipe.guard.path / "guard.json").is_file():
        raise InputError(
            f"guard.path: not a guard directory {recipe.guard.path!r}",
            source=str(path),
            line=_line_of(path, recipe.guard.path),
        )
    if recipe.uses_guard() and recipe.guard is None:
        raise InputError('critic or judge "guard" (or with_guard) needs a [guard] table', source=str(path))
    if recipe.dpo is not None and recipe.preferences is None:
        raise InputError("[dpo] needs a [preferences] table (its data)", source=str(path))


def _line_of(path: Path, value: str) -> int | None:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if value in line:
            return n
    return None


__all__ = ["BUNDLED", "STAGES", "Recipe", "bundled_recipes", "load_recipe", "resolve_recipe_path"]
