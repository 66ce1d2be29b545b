"""Linear regression with nn.Linear, MSELoss and SGD with momentum, PyTorch tutorial style.

The data is made with a seeded numpy RNG: y = X @ w_true + b_true + noise, 3 features.
Full-batch gradient descent; prints the learned weights next to the true ones.

Runs under PyTorch as written, and under fastgrad with the import lines changed
(tests/test_torch_scripts.py does that and compares the loss curves).

    python examples/torch_scripts/linear_regression.py
"""

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)

# Hyper-parameters
input_size = 3
output_size = 1
num_epochs = 300
learning_rate = 0.01

# Toy dataset
rng = np.random.default_rng(0)
w_true = np.array([[2.0], [-3.5], [0.7]])
b_true = 1.25
x_train = rng.uniform(-2.0, 2.0, size=(200, input_size))
y_train = x_train @ w_true + b_true + rng.normal(0.0, 0.3, size=(200, 1))


class LinearRegression(nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


model = LinearRegression(input_size, output_size).double()

# Loss and optimizer
criterion = nn.MSELoss()
optimizer = optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)

inputs = torch.from_numpy(x_train)
targets = torch.from_numpy(y_train)

# Train the model
losses = []
for epoch in range(num_epochs):
    # Forward pass
    outputs = model(inputs)
    loss = criterion(outputs, targets)

    # Backward and optimize
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    losses.append(loss.item())
    if (epoch + 1) % 50 == 0:
        print(f"Epoch [{epoch + 1}/{num_epochs}], Loss: {loss.item():.4f}")

with torch.no_grad():
    predicted = model(inputs)
    mae = (predicted - targets).abs().mean().item()

weight = model.linear.weight.detach().numpy().ravel()
bias = model.linear.bias.item()
print("learned weights:", np.round(weight, 3), "bias:", round(bias, 3))
print("true weights:   ", w_true.ravel(), "bias:", b_true)
print(f"mean absolute error: {mae:.4f}")
metrics = {"mae": mae, "bias": bias, "w0": float(weight[0]), "w1": float(weight[1]),
           "w2": float(weight[2])}
