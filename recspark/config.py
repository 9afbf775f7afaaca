"""The run configuration: :class:`RunConfig` (what a run trains, evaluates and publishes), :class:`TuneOptions`
(how ``run`` searches), and :func:`make_config`, which layers the defaults, the latest tuning's choices and every
explicitly given value, in that order. ``recspark.pipeline`` runs the stages with it."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

from recspark import als, split, tune
from recspark.content import ContentParams
from recspark.features import Weights
from recspark.itemcf import ItemCfParams
from recspark.ranker import RankerParams
from recspark.stars import StarsParams
from recspark.tables import Lakehouse
from recspark.works import ITEM_LEVELS

log = logging.getLogger(__name__)


# --series-order: auto (the search's choice, recspark.tune.series_check), on, off
SERIES_ORDER_CHOICES = ("auto", "on", "off")


@dataclass
class RunConfig:
    k: int = 10
    seed: int = 42
    weights: Weights = field(default_factory=Weights)
    als: als.AlsParams = field(default_factory=als.AlsParams)
    test_fraction: float = 0.2
    split: str = (
        "holdout"  # how the evaluation holds books out: holdout (random per user) | temporal (latest)
    )
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    similar_k: int = 20
    min_readers: int = 5  # books with fewer readers get no similar-books list
    keep_runs: int = 5
    evaluate: bool = True
    models: tuple[str, ...] = ("als", "itemcf", "content")  # trained and evaluated (popularity always is)
    model: str = "als"  # the family whose lists are published (the search's choice when it runs)
    itemcf: ItemCfParams = field(default_factory=ItemCfParams)
    content: ContentParams = field(default_factory=ContentParams)
    stars: StarsParams = field(default_factory=StarsParams)  # explicit ALS for predicted ratings
    ranker: RankerParams = field(default_factory=RankerParams)  # the two-stage ranker (model "ranker")
    ranker_model: str | None = None  # where the ranker a "ranker" run publishes with is saved (by its tuning)
    blend: float | None = None  # item-CF's share when a "ranker" run publishes the blend (recspark.blend)
    blend_prior: float = 0.0  # the blend's weight of the book's liked share (γ of recspark.blend)
    diversity: float = 0.0  # MMR weight of the published lists (0: the model's order; see recspark.diversity)
    item_level: str = "edition"  # what the models learn from: editions, or works (recspark.works)
    # later volumes of a series the reader has not started give way to its first volume (recspark.series); off
    # where the search found that the rule costs validation hits (recspark.tune.series_check)
    series_order: bool = True

    def __post_init__(self) -> None:
        if self.item_level not in ITEM_LEVELS:
            raise ValueError(
                f"unknown item level {self.item_level!r}; choose one of {', '.join(ITEM_LEVELS)}"
            )
        if not 0 <= self.diversity < 1:
            raise ValueError(f"diversity must be in [0, 1), not {self.diversity}")
        if self.split not in split.KINDS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(split.KINDS)}")
        unknown = [m for m in (*self.models, self.model) if m not in (*tune.FAMILIES, "ranker")]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; choose from {', '.join(tune.FAMILIES)}")
        if self.model == "ranker" and not {"als", "itemcf"} <= set(self.models):
            raise ValueError("the ranker needs the als and itemcf candidates: --models als,itemcf[,content]")
        if self.model not in (*self.models, "popularity", "ranker"):
            raise ValueError(
                f"model {self.model!r} is published but not among --models {','.join(self.models)}"
            )

    @property
    def published_label(self) -> str:
        """What the published lists come from, for people: the family, or which kind of two-stage list."""
        if self.model != "ranker":
            return self.model
        if self.blend is not None:
            liked = f", liked share {self.blend_prior:g}" if self.blend_prior else ""
            return f"ranker: blend of ALS and item-CF, weight {self.blend:g}{liked}"
        return "ranker: learned"

    def as_dict(self) -> dict:
        d = asdict(self)
        return d


TUNE_MODES = ("auto", "off", "full")


@dataclass(frozen=True)
class TuneOptions:
    """How ``run`` chooses ALS parameters: ``auto`` searches when the lakehouse holds no tuning result for the
    current silver input versions (and reuses it otherwise), ``full`` always searches, ``off`` keeps the
    configuration it is given (the stored or built-in values). ``budget_s`` None: the automatic budget of
    :func:`recspark.tune.successive_halving`."""

    mode: str = "auto"
    budget_s: float | None = None
    configs: int = tune.DEFAULT_CONFIGS
    space: dict | None = None  # None: tune.SPACE
    model: str = "auto"  # the family to publish: auto = the best validation score of the search
    ranker: str = "auto"  # auto: train and check the two-stage ranker in the search; off: single models only

    def __post_init__(self) -> None:
        if self.mode not in TUNE_MODES:
            raise ValueError(f"unknown tune mode {self.mode!r}; choose one of {TUNE_MODES}")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f"the tuning budget must be positive seconds, not {self.budget_s}")
        if self.configs < 1:
            raise ValueError(f"at least one configuration to tune, not {self.configs}")


def make_config(
    lake: Lakehouse | None = None,
    k: int = 10,
    seed: int = 42,
    evaluate: bool = True,
    use_tuned: bool = True,
    rank: int | None = None,
    reg: float | None = None,
    alpha: float | None = None,
    max_iter: int | None = None,
    scheme: str | None = None,
    models: tuple[str, ...] | None = None,
    model: str | None = None,
    split_kind: str = "holdout",
    diversity: float = 0.0,
    item_level: str | None = None,
    keep_runs: int = 5,
    series_order: str = "auto",
) -> RunConfig:
    """The run configuration: defaults, then the choices of the latest tuning in ``lake`` (when ``use_tuned``),
    then every explicitly given value (None = not given). ``model`` "auto" or None: the tuning's choice;
    ``series_order`` "auto": the series rule as the search left it (on unless it cost validation hits), "on" or
    "off": as given."""
    if series_order not in SERIES_ORDER_CHOICES:
        raise ValueError(
            f"series order must be one of {', '.join(SERIES_ORDER_CHOICES)}, not {series_order!r}"
        )
    cfg = RunConfig(
        k=k,
        seed=seed,
        evaluate=evaluate,
        models=tuple(models or RunConfig.models),
        split=split_kind,
        diversity=diversity,
        item_level=item_level or RunConfig.item_level,
        keep_runs=keep_runs,
    )
    found = tune.stored(lake) if (use_tuned and lake is not None) else None
    if found and (found.get("best") or found.get("model")):
        log.info(
            "using tuned choices: %s %s (--no-tuned for the defaults)", found.get("model"), found.get("best")
        )
        cfg = with_tuned(cfg, found)
    if model not in (None, "auto"):
        cfg = replace(cfg, model=model)
    given = {"rank": rank, "reg": reg, "alpha": alpha, "max_iter": max_iter}
    cfg = replace(cfg, als=replace(cfg.als, seed=seed, **{n: v for n, v in given.items() if v is not None}))
    if scheme is not None:
        cfg = replace(cfg, weights=replace(cfg.weights, scheme=scheme))
    if series_order != "auto":
        cfg = replace(cfg, series_order=series_order == "on")
    return cfg


def with_tuned(cfg: RunConfig, found: dict) -> RunConfig:
    """``cfg`` with a tuning's choices: the ALS winner's rank, regParam, alpha, scheme and signals, the best
    item-CF configuration, the series rule switched off where it cost validation hits, and the family with the
    best validation score (when ``cfg.models`` has it)."""
    if found.get("best"):
        params, weights = tune.apply(found["best"], cfg.als, cfg.weights)
        cfg = replace(cfg, als=params, weights=weights)
    if found.get("itemcf"):
        cfg = replace(cfg, itemcf=ItemCfParams(**found["itemcf"]))
    if found.get("content"):
        cfg = replace(cfg, content=ContentParams(**found["content"]))
    if found.get("stars"):
        chosen = found["stars"]
        cfg = replace(
            cfg, stars=replace(cfg.stars, reg=chosen["reg"], user_prior=chosen.get("user_prior", 5.0))
        )
    if (found.get("series") or {}).get("kept") is False:
        cfg = replace(cfg, series_order=False)
    chosen = found.get("model")
    rk = found.get("ranker") or {}
    two_stage = chosen == "ranker" and {"als", "itemcf"} <= set(cfg.models)
    if two_stage and rk.get("publish") == "blend":
        chosen_blend = rk["blend"]
        cfg = replace(
            cfg,
            model="ranker",
            ranker_model=None,
            blend=chosen_blend["weight"],
            blend_prior=chosen_blend.get("prior", 0.0),
        )
    elif two_stage and rk.get("path"):
        cfg = replace(cfg, model="ranker", ranker_model=rk["path"], blend=None, blend_prior=0.0)
    elif chosen in (*cfg.models, "popularity"):
        cfg = replace(cfg, model=chosen)
    elif chosen:  # e.g. the search chose item-CF, this run is limited to --models als: the best of the rest
        scores = {m: v for m, v in (found.get("models") or {}).items() if m in (*cfg.models, "popularity")}
        cfg = replace(cfg, model=max(scores, key=scores.get) if scores else cfg.models[0])
    return cfg
