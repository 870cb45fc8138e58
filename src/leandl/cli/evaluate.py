"""``leandl eval CKPT``: accuracy of a checkpoint on a data set's test split."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command."""

    @app.command("eval")
    def eval_cmd(
        ckpt: Annotated[str, typer.Argument(help="checkpoint directory (holds leandl.json)")],
        data: Annotated[str, typer.Option("--data", help="data set name")] = "digits",
        root: Annotated[Optional[str], typer.Option("--root", help="data directory")] = None,
        split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
        batch_size: Annotated[int, typer.Option("--batch-size")] = 512,
        seed: Annotated[int, typer.Option("--seed", help="split seed of the data set")] = 0,
        trust: Annotated[bool, typer.Option("--trust", help="allow code outside leandl's registry")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    ) -> None:
        """Evaluate CKPT on --data and print accuracy and loss."""
        from leandl.checkpoint import load
        from leandl.data import load_data, make_loader
        from leandl.errors import UsageError
        from leandl.train.evaluate import evaluate

        if split not in ("train", "val", "test"):
            raise UsageError(f"--split must be train, val or test, got '{split}'")
        model = load(ckpt, trust=trust)
        bundle = load_data(data, root=root, seed=seed)
        res = evaluate(model, make_loader(getattr(bundle, split), batch_size, shuffle=False))
        out = {"checkpoint": ckpt, "data": data, "split": split, **res}
        if as_json:
            print(json.dumps(out))
        else:
            print(f"{ckpt} on {data}/{split}: accuracy {res['accuracy']:.4f}, loss {res['loss']:.4f} "
                  f"({res['n']} samples)")
