"""An MLP autoencoder for handwritten digits: encoder 64-32-8 and decoder 8-32-64 as
nn.Sequential, sigmoid output, MSELoss, Adam, a shuffled DataLoader; reports the
reconstruction error on held-out digits under no_grad. PyTorch's MNIST autoencoder tutorial,
with scikit-learn's bundled 8x8 digits instead of downloading MNIST (the only change besides
the data set: 64 pixels instead of 784).

Runs under PyTorch as written, and under fastgrad with the import lines changed
(tests/test_torch_scripts.py does that and compares the loss curves).

    python examples/torch_scripts/digits_autoencoder.py
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.set_default_dtype(torch.float64)
torch.manual_seed(0)

digits = load_digits()
images = (digits.data / 16.0).astype(np.float64)
train_images, test_images = images[:1500], images[1500:]
train_loader = DataLoader(TensorDataset(torch.from_numpy(train_images)), batch_size=32,
                          shuffle=True)
test_x = torch.from_numpy(test_images)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 8),
        )
        self.decoder = nn.Sequential(
            nn.Linear(8, 32),
            nn.ReLU(),
            nn.Linear(32, 64),
            nn.Sigmoid(),
        )

    def forward(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return decoded


model = AutoEncoder()
loss_function = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)

epochs = 8
losses = []
for epoch in range(epochs):
    for (image,) in train_loader:
        reconstructed = model(image)
        loss = loss_function(reconstructed, image)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"epoch {epoch + 1}: last batch loss {losses[-1]:.5f}")

model.eval()
with torch.no_grad():
    test_loss = loss_function(model(test_x), test_x).item()
    codes = model.encoder(test_x)
print(f"test reconstruction MSE: {test_loss:.5f}, code shape: {tuple(codes.shape)}")
metrics = {"test_loss": test_loss, "code_mean": codes.mean().item()}
