"""A feed-forward classifier for handwritten digits: nn.Module with two hidden ReLU layers,
CrossEntropyLoss, Adam, a shuffled DataLoader, train()/eval() and argmax accuracy under
no_grad. PyTorch's MNIST tutorial, with scikit-learn's bundled 8x8 digits instead of
downloading MNIST (the only change besides the data set: 64 inputs instead of 784).

Runs under PyTorch as written, and under fastgrad with the import lines changed
(tests/test_torch_scripts.py does that and compares the loss curves).

    python examples/torch_scripts/digits_classifier.py
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

torch.set_default_dtype(torch.float64)
torch.manual_seed(1)

# Data: 1797 images of 8x8 pixels with values 0..16
digits = load_digits()
X = digits.data / 16.0
y = digits.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                    stratify=y)

train_ds = TensorDataset(torch.tensor(X_train, dtype=torch.float64),
                         torch.tensor(y_train, dtype=torch.long))
test_ds = TensorDataset(torch.tensor(X_test, dtype=torch.float64),
                        torch.tensor(y_test, dtype=torch.long))
train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)
test_loader = DataLoader(test_ds, batch_size=256)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-3)

losses = []


def train(epoch):
    model.train()
    running_loss = 0.0
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        running_loss += loss.item()
    print(f"Train Epoch: {epoch}\tLoss: {running_loss / len(train_loader):.6f}")


def test():
    model.eval()
    test_loss = 0.0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += F.cross_entropy(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    accuracy = correct / len(test_loader.dataset)
    print(f"Test set: Average loss: {test_loss:.4f}, "
          f"Accuracy: {correct}/{len(test_loader.dataset)} ({100.0 * accuracy:.1f}%)")
    return test_loss, accuracy


for epoch in range(1, 11):
    train(epoch)
test_loss, accuracy = test()
metrics = {"test_loss": test_loss, "accuracy": accuracy}
