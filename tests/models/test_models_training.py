"""digits_cnn actually learns: >= 97 % test accuracy on the embedded digits set, quickly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from leandl.models import create_model


def test_digits_cnn_reaches_97_percent() -> None:
    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    def as_images(a):  # noqa: ANN001, ANN202 - local helper
        return torch.tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    xtr, xte, ytr, yte = as_images(xtr), as_images(xte), torch.tensor(ytr), torch.tensor(yte)
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10, input_shape=(1, 8, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    assert acc >= 0.97
