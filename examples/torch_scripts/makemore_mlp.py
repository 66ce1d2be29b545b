"""A makemore-style character-level MLP (Bengio et al. 2003), PyTorch tutorial style.

Three characters of context are embedded in 10 dimensions, a tanh hidden layer of 200 units
predicts the next character (27 classes: a-z and the '.' end marker), minibatches of 32,
manual SGD on the raw parameters. The tutorial reads a file of 32k names; this script builds
200 made-up names from syllables instead, so it needs no download.

Runs under PyTorch as written, and under fastgrad with the import lines changed to
``import fastgrad as torch`` / ``import fastgrad.nn.functional as F``
(tests/test_torch_scripts.py does that and compares the loss curves).

    python examples/torch_scripts/makemore_mlp.py
"""

import random

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# ----------------------------------------------------------------------------- data
# 200 made-up names: two or three syllables each, picked by a seeded Python RNG.
# The syllables use every letter a-z, so the vocabulary is '.' plus 26 letters.
syllables = ["an", "bel", "cor", "da", "el", "fi", "gra", "ho", "is", "jo", "ka", "li", "mar",
             "na", "ol", "pe", "qui", "ra", "sa", "ti", "ul", "vy", "wen", "xa", "yu", "zel",
             "mi", "ro", "le", "ne", "ta", "bri", "ce", "dre", "lo", "vi"]
syl_rng = random.Random(1234)
words = []
while len(words) < 200:
    name = "".join(syl_rng.choice(syllables) for _ in range(syl_rng.choice([2, 2, 3])))
    if name not in words:
        words.append(name)

chars = sorted(list(set("".join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
itos = {i: s for s, i in stoi.items()}
vocab_size = len(itos)
print(f"{len(words)} names, vocabulary of {vocab_size}: {words[:5]}")

block_size = 3  # context length: how many characters we take to predict the next one


def build_dataset(words):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]  # crop and append
    X = torch.tensor(X)
    Y = torch.tensor(Y)
    print(X.shape, Y.shape)
    return X, Y


random.seed(42)
random.shuffle(words)
n1 = int(0.8 * len(words))
n2 = int(0.9 * len(words))
Xtr, Ytr = build_dataset(words[:n1])
Xdev, Ydev = build_dataset(words[n1:n2])
Xte, Yte = build_dataset(words[n2:])

# ----------------------------------------------------------------------------- model
g = torch.Generator().manual_seed(2147483647)  # for reproducibility
C = torch.randn((27, 10), generator=g)
W1 = torch.randn((30, 200), generator=g) * 0.2
b1 = torch.randn(200, generator=g) * 0.01
W2 = torch.randn((200, 27), generator=g) * 0.01
b2 = torch.randn(27, generator=g) * 0
parameters = [C, W1, b1, W2, b2]
print(sum(p.nelement() for p in parameters), "parameters")
for p in parameters:
    p.requires_grad = True

# ----------------------------------------------------------------------------- training
losses = []  # the loss of every step
lossi = []
stepi = []
max_steps = 3000
for i in range(max_steps):
    # minibatch construct
    ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)

    # forward pass
    emb = C[Xtr[ix]]  # (32, 3, 10)
    h = torch.tanh(emb.view(-1, 30) @ W1 + b1)  # (32, 200)
    logits = h @ W2 + b2  # (32, 27)
    loss = F.cross_entropy(logits, Ytr[ix])

    # backward pass
    for p in parameters:
        p.grad = None
    loss.backward()

    # update
    lr = 0.1 if i < 2000 else 0.01
    for p in parameters:
        p.data += -lr * p.grad

    # track stats
    stepi.append(i)
    lossi.append(loss.log10().item())
    losses.append(loss.item())
    if i % 500 == 0:
        print(f"{i:7d}/{max_steps:7d}: {loss.item():.4f}")


@torch.no_grad()  # this decorator disables gradient tracking
def split_loss(split):
    x, y = {"train": (Xtr, Ytr), "val": (Xdev, Ydev), "test": (Xte, Yte)}[split]
    emb = C[x]  # (N, block_size, n_embd)
    embcat = emb.view(emb.shape[0], -1)  # concat into (N, block_size * n_embd)
    h = torch.tanh(embcat @ W1 + b1)  # (N, n_hidden)
    logits = h @ W2 + b2  # (N, vocab_size)
    loss = F.cross_entropy(logits, y)
    print(split, loss.item())
    return loss.item()


metrics = {"train": split_loss("train"), "val": split_loss("val")}

# ----------------------------------------------------------------------------- sampling
g = torch.Generator().manual_seed(2147483647 + 10)
samples = []
for _ in range(10):
    out = []
    context = [0] * block_size  # initialize with all ...
    while True:
        emb = C[torch.tensor([context])]  # (1, block_size, n_embd)
        h = torch.tanh(emb.view(1, -1) @ W1 + b1)
        logits = h @ W2 + b2
        probs = F.softmax(logits, dim=1)
        ix = torch.multinomial(probs, num_samples=1, generator=g).item()
        context = context[1:] + [ix]
        if ix == 0:
            break
        out.append(ix)
    samples.append("".join(itos[i] for i in out))
print(samples)
metrics["sample_length"] = float(sum(len(s) for s in samples))
