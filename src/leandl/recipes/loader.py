"""Load recipes: YAML files or built-in names, ``--set`` overrides, full validation.

``load_recipe`` returns a :class:`Recipe` whose stages are validated against their stage
classes and whose techniques are checked against their signatures, so a typo fails before any
training starts, with the field path and the closest valid name in the message.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leandl.errors import ConfigError, UsageError, closest, unknown_name_message
from leandl.recipes.errors import config_error
from leandl.recipes.schema import Recipe, TechniqueEntry
from leandl.registry import STAGES

__all__ = ["load_recipe", "builtin_recipes", "resolve_recipe", "apply_overrides", "stage_options",
           "recipe_to_dict", "parse_recipe"]


def builtin_recipes() -> dict[str, str]:
    """Built-in recipe names -> one-line descriptions."""
    out = {}
    for entry in sorted(resources.files("leandl.recipes.builtin").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = _yaml_load(entry.read_text(), entry.name)
            out[entry.name[:-5]] = str(data.get("description", "")).strip().splitlines()[0:1][0] \
                if data.get("description") else ""
    return out


# Bounds on what a YAML text may expand to: a 1 KB "billion laughs" of nested aliases would
# otherwise build (or validate) a tree of 10**9 nodes, and deep nesting overflows the stack.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 100_000
MAX_YAML_ALIASES = 1000


def _bounded_loader(source: str) -> type:
    """A ``yaml.SafeLoader`` subclass that refuses deep nesting and large alias expansion."""
    import yaml

    class Bounded(yaml.SafeLoader):
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._depth = 0
            self._aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_YAML_ALIASES:
                    raise ConfigError(f"the YAML uses more than {MAX_YAML_ALIASES} aliases (*name)", where=source,
                                      fix="write the values out; aliases are limited to keep loading bounded")
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(f"the YAML nests deeper than {MAX_YAML_DEPTH} levels", where=source,
                                  fix="flatten the recipe; no recipe field nests that deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _check_expansion(node, source)
            return node

    return Bounded


def _check_expansion(root: Any, source: str) -> None:
    """Count the nodes the tree has with every alias expanded (memoised, so it is fast)."""
    import yaml

    sizes: dict[int, int] = {}
    # iterative post-order walk over the (acyclic or cyclic) node graph
    stack: list[tuple[Any, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            if isinstance(node, yaml.MappingNode):
                children = [c for pair in node.value for c in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise ConfigError(f"the YAML expands to more than {MAX_YAML_NODES} values (aliases of aliases)",
                                  where=source, fix="write the values out; alias expansion is limited")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError("the YAML refers to itself (a recursive alias)", where=source,
                              fix="remove the alias that refers to its own parent")
        on_path.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            stack.extend((c, False) for pair in node.value for c in pair if id(c) not in sizes)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((c, False) for c in node.value if id(c) not in sizes)


def safe_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` with bounded size, nesting depth and alias expansion.

    Raises:
        ConfigError: the text is too large, nests too deep, or expands too far (names ``source``).
        yaml.YAMLError: the text is not valid YAML.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"the YAML is {len(text)} bytes, more than the {MAX_YAML_BYTES} allowed", where=source,
                          fix="a recipe is a few kilobytes; check that this is the right file")
    loader = _bounded_loader(source)(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise ConfigError("the YAML nests too deeply to load", where=source, fix="flatten the recipe") from None
    finally:
        loader.dispose()


def _yaml_load(text: str, source: str) -> dict[str, Any]:
    import yaml

    try:
        data = safe_yaml(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        raise ConfigError(f"the recipe is not valid YAML ({getattr(exc, 'problem', exc)})", where=where,
                          fix="fix the YAML syntax at that line") from None
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a YAML mapping (name, model, data, stages ...)", where=source)
    return data


def _read(recipe: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.exists() and not path.is_file():  # a directory, FIFO or device: never opened
            raise UsageError(f"the recipe {path} is not a regular file", fix="give a path to a YAML file")
        if not path.is_file():
            raise UsageError(f"recipe file not found: {path}",
                             fix="give a path to a YAML file or a built-in name (`leandl recipes` lists them)")
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"the recipe file is {path.stat().st_size} bytes, more than the {MAX_YAML_BYTES} allowed",
                              where=str(path), fix="a recipe is a few kilobytes; check that this is the right file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the recipe ({exc})", where=str(path)) from None
        return _yaml_load(text, str(path)), str(path)
    names = builtin_recipes()
    if str(recipe) not in names:
        raise UsageError(unknown_name_message("recipe", str(recipe), names),
                         fix="give a YAML file path or a built-in name (`leandl recipes` lists them)")
    text = resources.files("leandl.recipes.builtin").joinpath(f"{recipe}.yaml").read_text()
    return _yaml_load(text, f"built-in recipe '{recipe}'"), f"built-in recipe '{recipe}'"


def stage_options(recipe: Recipe, index: int, source: str = "recipe") -> Any:
    """Validate stage ``index`` of ``recipe`` against its stage class's ``Options``."""
    entry = recipe.stages[index]
    try:
        cls = STAGES.get(entry.kind)
    except UsageError as exc:
        raise ConfigError(exc.what, where=f"{source}: stages[{index}].kind", fix=exc.fix) from None
    try:
        return cls.Options.model_validate(dict(entry.model_extra or {}))
    except ValidationError as exc:
        raise config_error(exc, cls.Options, prefix=f"stages[{index}]", source=source) from None


def parse_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping completely (sections, stages, technique names and arguments)."""
    from leandl.recipes.techniques import check_technique

    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, Recipe, source=source) from None
    for i in range(len(recipe.stages)):
        opts = stage_options(recipe, i, source)
        for j, tech in enumerate(getattr(opts, "techniques", None) or []):
            try:
                cls, _ = check_technique(tech, f"stages[{i}].techniques[{j}]")
                check_stage = getattr(cls, "check_stage", None)  # e.g. early exits: exits stages only
                if check_stage is not None:
                    check_stage(recipe.stages[i].kind, opts, recipe, f"stages[{i}].techniques[{j}]")
            except ConfigError as exc:
                raise ConfigError(exc.what, where=f"{source}: {exc.where}" if exc.where else source,
                                  fix=exc.fix) from None
    _check_order(recipe, source)
    return recipe


def _check_order(recipe: Recipe, source: str) -> None:
    trained = recipe.model.checkpoint is not None
    for i, entry in enumerate(recipe.stages):
        cls = STAGES.get(entry.kind)
        if cls.needs_trained_model and not trained:
            raise ConfigError(
                f"stage '{entry.kind}' needs a trained model, but no earlier stage trains one and "
                "the model does not come from a checkpoint", where=f"{source}: stages[{i}]",
                fix="put a 'train' stage before it, or start from `model: {checkpoint: DIR}`")
        trained = trained or cls.trains


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as plain data: every default filled, stages with their options."""
    out = recipe.model_dump(mode="json", exclude={"stages"})
    stages = []
    for i, entry in enumerate(recipe.stages):
        opts = stage_options(recipe, i)
        dumped = opts.model_dump(mode="json")
        if "techniques" in dumped:
            dumped["techniques"] = [
                {"name": t.name, **t.kwargs()} if isinstance(t, TechniqueEntry) else t
                for t in getattr(opts, "techniques")]
        stages.append({"kind": entry.kind, **dumped})
    out["stages"] = stages
    return out


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return safe_yaml(text, f"--set value {text[:40]!r}")
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (``stages.0.epochs=5``); every path must already exist,
    except a parameter of a technique entry (``stages.0.techniques.0.smoothing=0.2``), which
    may be added: the technique's own signature checks it when the recipe is validated."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set '{item}' has no '='", fix="write --set a.b=value, e.g. --set defaults.lr=0.01")
        path, raw = item.split("=", 1)
        node: Any = data
        parts = path.strip().split(".")
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            here = ".".join(parts[:k]) or "(top level)"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UsageError(f"--set {path}: '{part}' is not an index of {here} (0..{len(node) - 1})",
                                     fix="use a stage number, e.g. --set stages.0.epochs=5")
                key: Any = int(part)
            elif isinstance(node, dict):
                # a technique entry lists only the parameters the recipe set; any other one of the
                # technique's parameters may be added (checked when the technique is built at load)
                technique = k >= 2 and parts[k - 2] == "techniques" and "name" in node
                if part not in node and not (last and technique):
                    guess = closest(part, [str(x) for x in node])
                    hint = f"; did you mean '{guess}'?" if guess else ""
                    raise UsageError(f"--set {path}: {here} has no field '{part}'{hint}",
                                     fix=f"valid fields: {', '.join(map(str, node))}")
                key = part
            else:
                raise UsageError(f"--set {path}: {here} is a value, not a section")
            if last:
                node[key] = _parse_value(raw)
            else:
                node = node[key]
    return data


def resolve_recipe(data: dict[str, Any], overrides: list[str] | None = None, source: str = "recipe") -> Recipe:
    """Validate, fill defaults, apply overrides on the filled recipe, validate again."""
    recipe = parse_recipe(data, source)
    if not overrides:
        return recipe
    resolved = apply_overrides(recipe_to_dict(recipe), overrides)
    return parse_recipe(resolved, f"{source} with --set")


def load_recipe(recipe: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Load a recipe from a YAML path, a built-in name or a mapping, then resolve it."""
    if isinstance(recipe, dict):
        data, source = recipe, "recipe"
    elif not isinstance(recipe, str | Path):
        raise ConfigError(f"a recipe must be a mapping, a YAML path or a built-in name, not {type(recipe).__name__}")
    else:
        data, source = _read(recipe)
    return resolve_recipe(data, overrides, source)
