"""Competition configs: frozen dataclasses loaded from one YAML file per competition.

Every key is typed and checked. A mistake ends with one message that names the file, the key path
and what was expected. `--set a.b=value` overrides go through the same checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from kompete import algorithms, layouts, losses, paths
from kompete.algorithms import AlgorithmSpec, spec_for_model
from kompete.errors import ConfigError
from kompete.schema import joined, opt


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class SampleConfig:
    """A procedurally generated stand-in competition, written into the real layout at first use."""

    kind: Literal["dogs", "monet", "faces", "digits"] = opt(
        "dogs", "which layout the sample imitates: dogs, monet, faces (the folder layout, two classes) or "
                "digits (the folder layout, ten classes of grey 28 px digits)")
    n_images: int = opt(512, "images (dogs, faces, digits) or photos (monet) to generate", ge=8)
    n_target: int = opt(64, "monet: paintings to generate", ge=4)
    n_classes: int = opt(4, "dogs: number of 'breeds' (faces always has two: masked, unmasked; digits ten)", ge=1)
    image_size: int = opt(64, "side of the generated source images", ge=16)
    seed: int = opt(0, "generation seed: same seed, same bytes")


# sample.kind -> the layout it is written in
SAMPLE_LAYOUTS = {"dogs": "dogs", "monet": "monet", "faces": "folder", "digits": "folder"}
# sample.kind -> its class folders (data/samples.py draws them)
SAMPLE_CLASSES = {"faces": ("masked", "unmasked"), "digits": tuple(str(d) for d in range(10))}
DIFFAUGMENT_OPS = ("color", "translation", "cutout")  # train.diffaugment's names (data/diffaugment.py's OPS)


@dataclass(frozen=True)
class DataConfig:
    """The `data:` keys every layout reads; a layout's own keys (folders, crops) are declared in its module,
    kompete/layouts/<layout>.py, and join this section once data.layout names it."""

    layout: str = opt("dogs", "which loader reads the files: a registered layout (dogs, monet, folder: images or "
                              "class subfolders); `kompete config --keys` lists each one's keys")
    kaggle_dir: str = opt("", "folder under /kaggle/input/ holding the competition data")
    local_dir: str = opt("", "default local folder (relative to the working directory); --data-dir overrides")
    image_size: int = opt(64, "training resolution (square)", ge=8, le=1024)
    random_flip: bool = opt(True, "random horizontal flips during training")
    sample: SampleConfig | None = opt(None, "set for a procedurally generated sample competition")


@dataclass(frozen=True)
class OutputConfig:
    n_min: int = opt(10000, "fewest images Kaggle accepts", ge=1)
    n_max: int = opt(10000, "most images Kaggle accepts", ge=1)
    format: Literal["png", "jpg"] = opt("png", "image format inside the zip")
    image_size: int = opt(64, "side of every submitted image", ge=8)
    jpeg_quality: int = opt(95, "quality for jpg output", ge=1, le=100)
    archive: str = opt("images.zip", "name of the submission archive")
    layout: Literal["flat", "by_class"] = opt(
        "flat", "members of the zip: flat (00000.png, ...) or by_class (<class>/00000.png; conditional models)")


@dataclass(frozen=True)
class LimitsConfig:
    runtime_hours: float = opt(9.0, "kernel runtime limit; the training deadline counts from the kernel's start", gt=0)
    daily_submissions: int = opt(5, "submissions Kaggle allows per day", ge=1)
    external_data: bool = opt(False, "whether the rules allow external data and pretrained models")


@dataclass(frozen=True)
class MetricConfig:
    name: Literal["mifid", "fid"] = opt(
        "mifid", "the leaderboard metric: mifid (Kaggle's: FID / thresholded memorization distance) or fid "
                 "(plain FID; the memorization distance is still reported)")
    eps: float = opt(0.1, "memorization threshold: distances below it count as copying", gt=0, le=1)
    preprocess: Literal["tf", "pytorch-fid"] = opt(
        "tf", "Inception input path: tf (Kaggle's TF graph: 0-255, TF1 bilinear to 299 without half-pixel "
              "centres, (x-128)/128) or pytorch-fid (half-pixel bilinear, 2x-1; comparable with papers)")
    reference: str = opt("train_images", "real set: train_images (every training image), target_images (monet: the "
                                         "paintings), or a folder of held-out images, relative to the data dir")
    reference_size: int = opt(64, "side the reference images are resized to before Inception", ge=8)
    resize: Literal["antialias", "tf-bilinear"] = opt(
        "antialias", "how reference images are brought to reference_size: antialias (PIL Lanczos, Kaggle's "
                     "demo kernel) or tf-bilinear (TF1 bilinear, aliased, Kaggle's released scorer)")
    min_images: int = opt(2048, "below this many images the score is not comparable to Kaggle's", ge=2)
    reference_limit: int = opt(0, "use only the first N reference images, by name (0: all); faster, not Kaggle's", ge=0)
    batch_size: int = opt(50, "images per Inception forward pass", ge=1)


@dataclass(frozen=True)
class PlateauConfig:
    """train.plateau: what to do when the in-training score (eval.*) stops improving; off while patience is 0."""

    patience: int = opt(0, "evaluations without a new best score before acting (0 = off; needs eval.every_*)", ge=0)
    action: Literal["lower_lr", "stop"] = opt("lower_lr", "lower_lr: multiply the learning rates by `factor`; "
                                                          "stop: end training (the best checkpoint is kept)")
    factor: float = opt(0.5, "lower_lr: the multiplier", gt=0, le=1)
    max_lowerings: int = opt(3, "lower_lr: after this many lowerings the next plateau stops training", ge=0)
    min_delta: float = opt(0.0, "a score must beat the best by more than this to count as an improvement", ge=0)


@dataclass(frozen=True)
class TrainConfig:
    """The loop's settings, shared by every algorithm; an algorithm's own keys are in its section."""

    model: str = opt("dcgan", "what is trained: a model name of a registered algorithm (`kompete config --keys`)")
    loss: str = opt("hinge", "registered adversarial loss (bce, lsgan, ralsgan, hinge, wgan_gp)")
    batch_size: int = opt(64, "images per step (per GPU)", ge=1)
    lr_g: float = opt(2e-4, "generator learning rate", gt=0)
    lr_d: float = opt(2e-4, "discriminator learning rate", gt=0)
    beta1: float = opt(0.5, "Adam beta1", ge=0, le=1)
    beta2: float = opt(0.999, "Adam beta2", ge=0, le=1)
    epochs: int = opt(100, "upper bound on epochs; the time budget usually ends training first", ge=1)
    seed: int = opt(0, "seed for weights, noise and data order")
    g_channels: int = opt(64, "generator width (channels of its last hidden layer)", ge=1)
    d_channels: int = opt(64, "discriminator width (channels of its first layer)", ge=1)
    d_steps: int = opt(1, "discriminator updates per generator update (n_critic for wgan_gp)", ge=1)
    g_steps: int = opt(1, "generator updates per step, after the D updates", ge=1)
    diffaugment: str = opt("", "DiffAugment policy for D inputs, e.g. 'color,translation,cutout' ('' = off)")
    lr_schedule: Literal["constant", "cosine", "linear"] = opt(
        "constant", "constant, cosine with warm restarts, or linear decay to 0 over the time budget")
    lr_cycles: int = opt(1, "cosine: number of warm-restart cycles over the budget", ge=1)
    lr_decay_start: float = opt(0.5, "linear: fraction of the budget after which the lr decays", ge=0, le=1)
    lr_over: Literal["budget", "epochs"] = opt(
        "budget", "what schedules run over: this run's time budget, or train.epochs (for a schedule that "
                  "continues across resumed runs, e.g. several Kaggle kernels)")
    amp: bool = opt(True, "CUDA only: bf16 on sm_80 and later (A100, H100), else fp16 with a gradient scaler (T4)")
    compile: Literal[False, True, "reduce-overhead"] = opt(
        False, "CUDA only: torch.compile the networks (true), or 'reduce-overhead' (CUDA graphs: fewer launches "
               "for small nets); falls back to eager with one warning when compiling fails")
    log_every: int = opt(50, "steps between ticks: a metrics row, the stop decision under DDP (one host sync)", ge=1)
    sample_every_epochs: int = opt(1, "epochs between fixed-noise sample grids", ge=1)
    checkpoint_minutes: float = opt(30.0, "minutes between checkpoints (and one at the end)", gt=0)
    keep_checkpoints: int = opt(2, "checkpoints kept in the run folder", ge=1)
    safety_margin_s: float = opt(120.0, "seconds kept free before the deadline besides generation", ge=0)
    nan_retries: int = opt(3, "restores from the last checkpoint (lr halved) before a non-finite loss stops", ge=0)
    plateau: PlateauConfig = opt(PlateauConfig(), "lower the lr or stop when the in-training score stalls")


DEFAULT_MODELS = {"generate": "dcgan", "translate": "cyclegan"}  # train.model when a YAML leaves it out

# Keys that moved into an algorithm's section: a YAML that still has them is told where they went.
MOVED = {**{f"train.{k}": f"gan.{k}" for k in ("z_dim", "self_attention", "pixel_norm", "minibatch_std",
                                               "ema_decay", "ema_start")},
         **{f"{s}.{k}": f"loss.{k}" for s in ("train", "gan") for k in ("label_smoothing", "label_noise")},
         "gan.gp_weight": "loss.gp_weight"}
# Moved keys every saved config (config.yaml of a run, a checkpoint) holds: at these values they are dropped
SAVED_DEFAULTS = {"gan.label_smoothing": 0.0, "gan.label_noise": 0.0, "gan.gp_weight": 10.0}


@dataclass(frozen=True)
class EvalConfig:
    """In-training MiFID (off unless every_minutes or every_epochs is above 0)."""

    every_minutes: float = opt(0.0, "minutes between in-training evaluations (0 = by epochs, or off)", ge=0)
    every_epochs: int = opt(0, "epochs between in-training evaluations (0 = by minutes, or off)", ge=0)
    n_images: int = opt(2000, "images generated per evaluation (translation: that many photos, fixed); "
                              "figures are biased upward against a 10,000-image score, comparable with each other",
                        ge=2)
    batch_size: int = opt(100, "images per generator and Inception batch during an evaluation", ge=1)
    alarm_factor: float = opt(1.5, "warn when the memorization distance falls below this x metric.eps", ge=1)
    max_fraction: float = opt(0.05, "largest share of the time budget spent evaluating", gt=0, le=1)
    keep_best: bool = opt(True, "keep the checkpoint with the lowest in-training MiFID as checkpoints/best.pt")

    @property
    def enabled(self) -> bool:
        return self.every_minutes > 0 or self.every_epochs > 0


@dataclass(frozen=True)
class GenerateConfig:
    n_images: int = opt(10000, "images to write into the zip", ge=1)
    batch_size: int = opt(500, "images per generator call", ge=1)
    seed: int = opt(0, "noise seed: the same seed gives the same images")
    truncation: float = opt(0.0, "resample noise whose |z| exceeds this (0 = plain normal noise)", ge=0)
    use_ema: bool = opt(True, "generate with the EMA copy of G when there is one")
    # Any: the loader has no mapping type; _check_names checks it is class name -> count
    class_counts: Any = opt({}, "conditional models: images per class name, summing to n_images; unlisted "
                                "classes get none ({} = balanced, the first classes taking the remainder)")


@dataclass(frozen=True)
class KernelConfig:
    machine_shape: str = opt("NvidiaTeslaT4", "Kaggle accelerator; NvidiaTeslaT4 gives two T4s")
    enable_gpu: bool = opt(True, "run the kernel on a GPU")
    enable_internet: bool = opt(False, "kernels run offline unless you ask otherwise")
    is_private: bool = opt(True, "keep pushed kernels private")
    dataset_sources: list[str] = opt([], "owner/slug datasets attached to the kernel (weights, wheels)")
    owner: str = opt("", "Kaggle user owning the kernels kompete builds (default: KAGGLE_USERNAME or kaggle.json)")
    score: bool = opt(False, "also score images.zip inside the kernel (attach the Inception weights as a dataset)")
    max_concurrent: int = opt(2, "kernels a campaign runs at once (Kaggle allows 2 GPU batch sessions)", ge=1)


@dataclass(frozen=True)
class Config:
    name: str = opt("", "competition slug, as in kaggle.com/c/<name>")
    title: str = opt("", "human-readable title")
    task: Literal["generate", "translate"] = opt("generate", "generate from noise, or translate photos")
    data: DataConfig = opt(None)
    output: OutputConfig = opt(None)
    limits: LimitsConfig = opt(None)
    metric: MetricConfig = opt(None)
    train: TrainConfig = opt(None)
    generate: GenerateConfig = opt(None)
    eval: EvalConfig = opt(None)
    kernel: KernelConfig = opt(None)
    algo: Any = opt(None, "the section of the algorithm that trains train.model, under that algorithm's name")
    loss: Any = opt(None, "the options of the loss train.loss names (kompete.losses), under `loss:`")

    @property
    def spec(self) -> AlgorithmSpec:
        return spec_for_model(self.train.model)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form: the algorithm's section under its own name (`gan:`, `cyclegan:`, `cut:`)."""
        d = dataclasses.asdict(self)
        d[self.spec.name] = d.pop("algo")
        return d


REQUIRED = ("name", "task")
FIXED_SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if f.name not in ("algo", "loss"))
MAX_SEED = 2**32 - 1  # numpy's limit; torch's is larger


# --------------------------------------------------------------------------- loading


def find_competition(name_or_path: str) -> Path:
    """A competition name (`sample-dogs`) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ConfigError(f"config file {candidate} does not exist")
        return candidate
    for folder in paths.competitions_dirs():
        for ext in (".yaml", ".yml"):
            if (folder / f"{name_or_path}{ext}").is_file():
                return folder / f"{name_or_path}{ext}"
    known = ", ".join(list_competitions()) or "none"
    raise ConfigError(f"unknown competition {name_or_path!r}; configured: {known}",
                      hint="add competitions/<name>.yaml or pass a path to a YAML file")


def list_competitions() -> list[str]:
    names: list[str] = []
    for folder in paths.competitions_dirs():
        for f in sorted(folder.glob("*.yaml")):
            if f.stem not in names:
                names.append(f.stem)
    return names


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML would keep the last silently:
    a second `train:` block replaced the first whole)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"{self.name}: line {line}: duplicate key '{key}' (first at line {seen[key]}); "
                                  "the second would silently replace the first")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """A YAML file as Python values: UTF-8 only, no duplicate keys, every failure a ConfigError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                          hint="save the file as UTF-8") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    finally:
        loader.dispose()


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load, override and validate a competition config."""
    path = find_competition(name_or_path)
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    origin = Origin(str(path))
    for item in overrides:
        origin.overridden.add(apply_override(raw, item, origin=str(path)))
    return config_from_dict(raw, origin=origin)


class Origin(str):
    """Where config values came from: the file, except keys set with --set (errors then blame --set)."""

    def __new__(cls, text: str):
        obj = super().__new__(cls, text)
        obj.overridden = set()
        return obj


def _where(origin: str, key: str) -> str:
    """The origin to name in an error about `key` (or a section holding an overridden key)."""
    for k in getattr(origin, "overridden", ()):
        if k == key or k.startswith(key + ".") or key.startswith(k + "."):
            return f"--set {k}"
    return origin


def config_from_dict(raw: dict[str, Any], origin: str = "<dict>") -> Config:
    """Validate a raw config: the fixed sections, then the section of the algorithm train.model names."""
    for key in REQUIRED:
        if key not in raw:
            raise ConfigError(f"{origin}: missing required key '{key}'")
    sections = algorithms.section_names()
    unknown = sorted(set(raw) - set(FIXED_SECTIONS) - sections - {"loss"})
    if unknown:
        raise ConfigError(f"{origin}: unknown key '{unknown[0]}' at the top level; valid keys: "
                          f"{', '.join([*FIXED_SECTIONS, 'loss', *sorted(sections)])}")
    raw = _check_moved(raw, origin)
    train = raw.get("train") or {}
    if isinstance(train, dict):  # unset model and loss: the task's usual algorithm and its loss
        task = raw["task"] if isinstance(raw["task"], str) else ""
        train = {"model": DEFAULT_MODELS.get(task, "dcgan"), **train}
        spec = spec_for_model(str(train["model"]), _where(origin, "train.model"))
        if spec.losses:
            train = {"loss": spec.losses[0], **train}
    fixed = {k: v for k, v in raw.items() if k not in sections and k not in ("loss", "data")}
    cfg = _build(Config, {**fixed, "train": train}, origin, "")
    cfg = dataclasses.replace(cfg, data=_build_data(raw.get("data"), origin))
    spec = spec_for_model(cfg.train.model, _where(origin, "train.model"))
    for other in sorted(sections & set(raw) - {spec.name}):
        # another algorithm's section may stay in the file (so `--set train.model=cut` works on a Monet YAML
        # that also tunes cyclegan); it is checked for typos, then neither used nor hashed
        _build(algorithms.ALGORITHMS.get(other).any_section(), raw[other], origin, other)
    _check_spec(spec, cfg, origin)
    algo = _build_section(spec, cfg.train.model, raw.get(spec.name), origin)
    loss = _build_loss(cfg.train.loss, raw.get("loss"), origin)
    cfg = dataclasses.replace(cfg, algo=algo, loss=loss)
    _check_names(cfg, origin)
    return cfg


def _build_section(spec: AlgorithmSpec, model: str, section: Any, origin: str) -> Any:
    """The algorithm's section for `model`: shared keys and that network's options."""
    return _build_joined(spec.name, spec.section_for(model), model, spec.options, section, origin,
                         spec.models[model])


def _build_data(section: Any, origin: str) -> Any:
    """The data section: the shared keys and the keys of the layout data.layout names (looked up first)."""
    name = section.get("layout", DataConfig.layout) if isinstance(section, dict) else DataConfig.layout
    if not isinstance(name, str) or name not in {s.name for s in layouts.specs()}:
        raise ConfigError(f"{_where(origin, 'data.layout')}: 'data.layout' is {name!r}; choose one of: "
                          f"{', '.join(layouts.LAYOUTS.names())}")
    options = {s.name: s.options for s in layouts.specs()}
    return _build_joined("data", joined(DataConfig, options[name]), name, options, section, origin)


def _build_joined(prefix: str, cls: type, chosen: str, options: dict[str, type], section: Any, origin: str,
                  defaults: dict[str, Any] | None = None) -> Any:
    """A section of shared keys plus the options of `chosen` (a network, a layout). Another one's option is
    dropped at its default (a saved sngan config switched to dcgan) and an error naming its owner otherwise."""
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise ConfigError(f"{origin}: '{prefix}' must be a mapping, got {type(section).__name__}")
    own = {f.name for f in dataclasses.fields(cls)}
    kept = {}
    for key, value in section.items():
        owners = sorted({m for m, o in options.items() for f in dataclasses.fields(o) if f.name == key})
        if key in own or not owners:
            kept[key] = value  # unknown keys fail in _build with the valid ones listed
            continue
        option = next(f for f in dataclasses.fields(options[owners[0]]) if f.name == key)
        if value != option.default:
            names = sorted({o.removesuffix("_cond") for o in owners})
            raise ConfigError(f"{_where(origin, f'{prefix}.{key}')}: '{prefix}.{key}' is an option of "
                              f"{', '.join(names)}, not of {chosen}; remove it")
    return _build(cls, {**(defaults or {}), **kept}, origin, prefix)


def _build_loss(name: str, options: Any, origin: str) -> Any:
    """The options of loss `name` from the `loss:` section; a key of another loss is named as such."""
    if name not in losses.LOSSES:
        raise ConfigError(f"{_where(origin, 'train.loss')}: 'train.loss' is {name!r}; choose one of: "
                          f"{', '.join(losses.LOSSES.names())}")
    cls = losses.LOSSES.get(name).options
    own = {f.name for f in dataclasses.fields(cls)}
    for key in options if isinstance(options, dict) else ():
        owners = [n for n in losses.LOSSES.names()
                  if key in {f.name for f in dataclasses.fields(losses.LOSSES.get(n).options)}]
        if key not in own:
            what = f"an option of {', '.join(owners)}, not of {name}" if owners else f"not an option of {name}"
            valid = f" (its options: {', '.join(sorted(own))})" if own else f" ({name} takes none)"
            raise ConfigError(f"{_where(origin, f'loss.{key}')}: 'loss.{key}' is {what}{valid}")
    return _build(cls, options, origin, "loss")


def _check_moved(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    """raw without the moved keys a saved config holds at their old defaults; any other moved key is an error."""
    raw = dict(raw)
    for section in ("train", "gan"):
        keys = raw.get(section)
        if isinstance(keys, dict) and any(f"{section}.{k}" in SAVED_DEFAULTS for k in keys):
            raw[section] = keys = {k: v for k, v in keys.items() if SAVED_DEFAULTS.get(f"{section}.{k}", ...) != v}
        for key in keys if isinstance(keys, dict) else ():
            if f"{section}.{key}" in MOVED:
                new = MOVED[f"{section}.{key}"]
                raise ConfigError(f"{origin}: '{section}.{key}' is now '{new}' "
                                  f"(a key of the {new.split('.')[0]} section)")
    return raw


def _check_spec(spec: AlgorithmSpec, cfg: Config, origin: str) -> None:
    """What the algorithm accepts of the shared keys: its output kind, its losses, the train keys it reads."""
    if cfg.task != spec.task:
        raise ConfigError(f"{origin}: train.model {cfg.train.model!r} ({spec.name}) makes '{spec.task}' output, "
                          f"but 'task' is {cfg.task!r}")
    if spec.losses and cfg.train.loss not in spec.losses:
        raise ConfigError(f"{_where(origin, 'train.loss')}: 'train.loss' is {cfg.train.loss!r}, but {spec.name} trains with "
                          f"{' or '.join(repr(x) for x in spec.losses)}")
    defaults = TrainConfig()
    for key in spec.ignores:  # a saved config holds every key at its default: only a changed one is a mistake
        if getattr(cfg.train, key) != getattr(defaults, key):
            raise ConfigError(f"{_where(origin, 'train.' + key)}: 'train.{key}' does nothing for {spec.name}; remove it")


def apply_override(raw: dict[str, Any], item: str, origin: str = "--set") -> str:
    """Apply `a.b=value` to a raw config dict (the value is parsed as YAML); returns the key."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr_g=1e-4")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    if ".".join(parts) in MOVED:
        raise ConfigError(f"--set {key}: '{key}' is now '{MOVED[key]}' (a key of the {MOVED[key].split('.')[0]} "
                          "section)")
    if len(parts) == 2 and parts[0] == "loss":  # the options of train.loss, whichever it ends up: checked at load
        if raw.get("loss") is None:
            raw["loss"] = {}
        if not isinstance(raw["loss"], dict):
            raise ConfigError(f"--set {key}: 'loss' in {origin} is not a mapping")
        raw["loss"][parts[1]] = _parse_scalar(text)
        return ".".join(parts)
    node: Any = raw
    cls: Any = Config
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if cls is Config:
            hints.pop("algo")
            hints.update({s.name: s.any_section() for s in algorithms.specs()})
            hints["data"] = joined(DataConfig, *(s.options for s in layouts.specs()))
        if part not in hints:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"--set {key}: unknown key '{part}' in {where}; valid keys: {', '.join(hints)}")
        if i == len(parts) - 1:
            node[part] = _parse_scalar(text)
            return ".".join(parts)
        cls = _dataclass_of(hints[part])
        if cls is None:
            raise ConfigError(f"--set {key}: '{'.'.join(parts[:i + 1])}' is a value, not a section")
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], dict):
            raise ConfigError(f"--set {key}: '{'.'.join(parts[:i + 1])}' in {origin} is not a mapping")
        node = node[part]


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, ConfigError):
        return text


def _dataclass_of(tp: Any) -> Any:
    for arg in typing.get_args(tp) or (tp,):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _build(cls: Any, raw: Any, origin: str, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(origin, prefix)}: '{prefix or 'top level'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(hints))
    if unknown:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ConfigError(f"{_where(origin, _join(prefix, unknown[0]))}: unknown key '{_join(prefix, unknown[0])}' in {where}; "
                          f"valid keys: {', '.join(hints)}")
    values = {}
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        tp = hints[f.name]
        if f.name in raw:
            values[f.name] = _coerce(raw[f.name], tp, origin, key)
        elif dataclasses.is_dataclass(tp):
            values[f.name] = _build(tp, {}, origin, key)
        else:
            continue
        _check_bounds(values[f.name], f, origin, key)
    return cls(**values)


def _coerce(value: Any, tp: Any, origin: str, key: str) -> Any:
    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], origin, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, origin, key)
    if origin_tp is Literal:
        if not any(value == a and type(value) is type(a) for a in args):  # 1 == True, yet 1 is no choice
            raise ConfigError(f"{_where(origin, key)}: '{key}' must be one of {', '.join(map(_yaml_word, args))}; got {value!r}")
        return value
    if origin_tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(origin, key)}: '{key}' must be a list; got {value!r}")
        item_tp = args[0] if args else Any
        return type([])(_coerce(v, item_tp, origin, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    return _coerce_scalar(value, tp, origin, key)


def _coerce_scalar(value: Any, tp: Any, origin: str, key: str) -> Any:
    """A bool, int, float or str key's value, checked (YAML's 1e-4 string read as the number it means)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be true or false; got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= 2**63:  # torch, numpy and SQLite all stop at 64 bits
                raise ConfigError(f"{_where(origin, key)}: '{key}' is too large ({value})")
            return value
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be an integer; got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and not math.isfinite(number):  # nan slips past every bound check
            raise ConfigError(f"{_where(origin, key)}: '{key}' must be a finite number; got {value!r}")
        if number is not None:
            return number
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be a number; got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be a string; got {value!r}")
    raise ConfigError(f"{_where(origin, key)}: '{key}' has a type kompete cannot read ({tp})")


def _yaml_word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check_bounds(value: Any, f: dataclasses.Field, origin: str, key: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    ge, le, gt = f.metadata.get("ge"), f.metadata.get("le"), f.metadata.get("gt")
    if f.name.endswith("seed"):  # every seed reaches numpy's default_rng or torch.manual_seed
        ge, le = 0 if ge is None else ge, MAX_SEED if le is None else le
    if ge is not None and value < ge:
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be >= {ge}; got {value}")
    if le is not None and value > le:
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be <= {le}; got {value}")
    if gt is not None and value <= gt:
        raise ConfigError(f"{_where(origin, key)}: '{key}' must be > {gt}; got {value}")


def _check_names(cfg: Config, origin: str) -> None:
    """Relations between keys. Registry names (losses, networks) are checked where they are used, with torch."""
    if cfg.output.n_min > cfg.output.n_max:
        raise ConfigError(f"{origin}: 'output.n_min' ({cfg.output.n_min}) exceeds 'output.n_max' ({cfg.output.n_max})")
    n, out = cfg.generate.n_images, cfg.output
    if not out.n_min <= n <= out.n_max:  # else a whole training (a 9-hour kernel) ends without a zip
        want = f"{out.n_min}" if out.n_min == out.n_max else f"{out.n_min}-{out.n_max}"
        raise ConfigError(f"{_where(origin, 'generate.n_images')}: 'generate.n_images' is {n}, but {cfg.name} "
                          f"accepts {want} images (output.n_min..output.n_max)")
    if cfg.data.sample is not None and SAMPLE_LAYOUTS[cfg.data.sample.kind] != cfg.data.layout:
        want = [k for k, v in SAMPLE_LAYOUTS.items() if v == cfg.data.layout]
        raise ConfigError(f"{origin}: 'data.sample.kind' {cfg.data.sample.kind!r} makes the "
                          f"{SAMPLE_LAYOUTS[cfg.data.sample.kind]} layout, but 'data.layout' is {cfg.data.layout!r}"
                          + (f" (its sample kind: {', '.join(want)})" if want else ""))
    _check_class_counts(cfg.generate.class_counts, n, _where(origin, "generate.class_counts"))
    _check_class_names(cfg, origin)
    _check_diffaugment(cfg.train.diffaugment, _where(origin, "train.diffaugment"))
    if problem := cfg.spec.check(cfg.algo):
        key, what = problem
        raise ConfigError(f"{_where(origin, f'{cfg.spec.name}.{key}')}: '{cfg.spec.name}.{key}' {what}")
    if cfg.train.plateau.patience and not cfg.eval.enabled:
        raise ConfigError(f"{_where(origin, 'train.plateau.patience')}: 'train.plateau' acts on in-training "
                          "scores; set eval.every_minutes or eval.every_epochs too")
    # whether the model is conditional (and which classes exist) is known only with the data or a checkpoint:
    # the Task checks that when it is built, before any training
    for key, used in (("generate.class_counts", bool(cfg.generate.class_counts)),
                      ("output.layout", out.layout == "by_class")):
        if used and cfg.task != "generate":
            raise ConfigError(f"{_where(origin, key)}: '{key}' needs class-conditional generation, but "
                              f"{cfg.name} is a '{cfg.task}' task")


def _check_class_counts(counts: Any, n_images: int, where: str) -> None:
    key = "generate.class_counts"
    if not isinstance(counts, dict):
        raise ConfigError(f"{where}: '{key}' must be a mapping of class name to image count; got {counts!r}")
    for name, count in counts.items():
        if not isinstance(name, (str, int)) or isinstance(name, bool) or str(name) == "":
            raise ConfigError(f"{where}: '{key}' has a key that is not a class name: {name!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{where}: '{key}.{name}' must be an integer >= 0; got {count!r}")
    if len({str(name) for name in counts}) != len(counts):
        raise ConfigError(f"{where}: '{key}' names a class twice")
    if counts and sum(counts.values()) != n_images:
        raise ConfigError(f"{where}: '{key}' adds up to {sum(counts.values())} images, but "
                          f"'generate.n_images' is {n_images}")


def _check_class_names(cfg: Config, origin: str) -> None:
    """Class names a sample competition fixes are checked here; others need the data (the Task checks them)."""
    sample = cfg.data.sample
    classes = SAMPLE_CLASSES.get(sample.kind) if sample is not None else None
    unknown = [str(k) for k in cfg.generate.class_counts if classes is not None and str(k) not in classes]
    if unknown:
        raise ConfigError(f"{_where(origin, 'generate.class_counts')}: 'generate.class_counts' names "
                          f"{', '.join(map(repr, unknown))}, not a class of {cfg.name}; its classes: {', '.join(classes)}")


def _check_diffaugment(policy: str, where: str) -> None:
    for name in (p.strip() for p in policy.split(",")):
        if name and name not in DIFFAUGMENT_OPS:
            raise ConfigError(f"{where}: 'train.diffaugment' names {name!r}; choose from: {', '.join(DIFFAUGMENT_OPS)} "
                              "(comma-separated, '' = off)")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --------------------------------------------------------------------------- identity and saving


# Bump when a default changes meaning or value: the hash records only the values that differ from the
# defaults, so a new key (with a default) leaves every hash as it was, and a changed default must say so here.
SCHEMA_VERSION = 1


def config_hash(cfg: Config) -> str:
    """Ten hex digits that name runs and kernels: same settings, same hash.

    Hashed: the schema version and the values that differ from the defaults (the algorithm's section under
    its name, compared with that section's own defaults), so adding a key with a default changes no hash."""
    changed = _changes(cfg, _build(Config, {}, "<defaults>", ""))
    for name in ("algo", "loss", "data"):
        changed.pop(name, None)
    if data := _changes(cfg.data, type(cfg.data)()):  # against the defaults of its layout's keys too
        changed["data"] = data
    if algo := _changes(cfg.algo, type(cfg.algo)()):
        changed[cfg.spec.name] = algo
    if loss := _changes(cfg.loss, type(cfg.loss)()):
        changed["loss"] = loss
    blob = json.dumps({"schema": SCHEMA_VERSION, "changed": changed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _changes(value: Any, default: Any) -> dict[str, Any]:
    """The fields of dataclass `value` that differ from `default`'s, nested sections as nested dicts."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        v, d = getattr(value, f.name), getattr(default, f.name, None)
        if dataclasses.is_dataclass(v) and dataclasses.is_dataclass(d):
            if sub := _changes(v, d):
                out[f.name] = sub
        elif dataclasses.is_dataclass(v):  # an optional section that is set (data.sample): present, even if default
            out[f.name] = _changes(v, type(v)())
        elif v != d or type(v) is not type(d):
            out[f.name] = v
    return out


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically); load_config reads it back."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    paths.write_text_atomic(path, text)
    return Path(path)


def describe(cls: Any = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every leaf key, each algorithm's section included: `kompete config --keys`."""
    if cls is None:
        rows = describe(Config)
        for spec in algorithms.specs():
            models = ", ".join(spec.models)
            rows.append((f"{spec.name}:", "", f"section of the {spec.name} algorithm (train.model: {models})"))
            rows += describe(spec.section, spec.name)
            for options in dict.fromkeys(spec.options.values()):
                owners = ", ".join(m for m, o in spec.options.items() if o is options)
                rows += [(key, default, f"{owners}: {help}") for key, default, help in describe(options, spec.name)]
        for lay in layouts.specs():
            rows += [(key, default, f"{lay.name}: {help}") for key, default, help in describe(lay.options, "data")]
        for name in losses.LOSSES.names():
            loss = losses.LOSSES.get(name)
            if dataclasses.fields(loss.options):
                rows.append(("loss:", "", f"options of train.loss {name} ({loss.summary})"))
                rows += describe(loss.options, "loss")
        return rows
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if cls is Config and f.name in ("algo", "loss"):
            continue
        key = _join(prefix, f.name)
        sub = _dataclass_of(hints[f.name])
        if sub is not None:
            rows += describe(sub, key)
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((key, repr(default), f.metadata.get("help", "")))
    return rows
