"""Logistic regression on two Gaussian blobs: nn.Linear + sigmoid, BCELoss, minibatch SGD from
a shuffled DataLoader, accuracy with a 0.5 threshold. PyTorch tutorial style.

The data is made with a seeded numpy RNG. Runs under PyTorch as written, and under fastgrad
with the import lines changed (tests/test_torch_scripts.py does that and compares the loss
curves).

    python examples/torch_scripts/logistic_regression.py
"""

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(42)

# Two classes, 150 points each, around (-1, -1) and (1.5, 1)
rng = np.random.default_rng(42)
n = 150
x0 = rng.normal(loc=[-1.0, -1.0], scale=1.0, size=(n, 2))
x1 = rng.normal(loc=[1.5, 1.0], scale=1.0, size=(n, 2))
X = np.vstack([x0, x1])
y = np.concatenate([np.zeros(n), np.ones(n)])

X_train = torch.tensor(X).double()
y_train = torch.tensor(y).double().unsqueeze(1)
dataset = TensorDataset(X_train, y_train)
loader = DataLoader(dataset, batch_size=20, shuffle=True)


class LogisticRegression(nn.Module):
    def __init__(self, n_features):
        super(LogisticRegression, self).__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x):
        y_pred = torch.sigmoid(self.linear(x))
        return y_pred


model = LogisticRegression(2).double()
criterion = nn.BCELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

losses = []
num_epochs = 20
for epoch in range(num_epochs):
    epoch_loss = 0.0
    for xb, yb in loader:
        y_pred = model(xb)
        loss = criterion(y_pred, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        epoch_loss += loss.item() * xb.size(0)
    if (epoch + 1) % 5 == 0:
        print(f"epoch: {epoch + 1}, loss = {epoch_loss / len(dataset):.4f}")

with torch.no_grad():
    y_predicted = model(X_train)
    y_predicted_cls = y_predicted.round()
    acc = y_predicted_cls.eq(y_train).sum() / float(y_train.shape[0])
    print(f"accuracy: {acc.item():.4f}")

metrics = {"accuracy": acc.item(), "full_loss": criterion(model(X_train), y_train).item()}
